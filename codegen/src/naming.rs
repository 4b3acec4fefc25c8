//! Identifier hygiene: Rust names for protobuf names, and method ids.
//!
//! Every identifier the generator emits goes through [`ident`], so a keyword becomes a raw
//! identifier (`r#move`) or gets a trailing underscore (`self_`), the way prost-build names
//! fields and modules. Names that are not identifiers are reported, never passed to
//! `proc_macro2::Ident::new` (which would panic).

use heck::ToSnakeCase;
use proc_macro2::{Ident, Span};

use crate::error::Error;

/// FNV-1a 32-bit offset basis.
const FNV_OFFSET_BASIS: u32 = 0x811C_9DC5;
/// FNV-1a 32-bit prime.
const FNV_PRIME: u32 = 0x0100_0193;

/// The wire id of the method with full name `name` (`/package.Service/Method`): FNV-1a 32-bit.
///
/// A copy of `volley::MethodId::from_name`, so the generator can find collisions without
/// depending on the runtime crate; the unit test below pins both to the same vectors.
pub(crate) const fn method_id(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut hash = FNV_OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// Rust methods every generated client has; an rpc whose name would clash gets a trailing `_`.
pub(crate) const RESERVED_CLIENT_METHODS: &[&str] = &["new", "into_inner", "connect", "timeout"];

/// Keywords that can be written as raw identifiers (strict and reserved, editions 2015–2024).
const RAW_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn", "else", "enum", "false", "final", "fn",
    "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Keywords that cannot be raw identifiers; they get a trailing underscore, as in prost-build.
const SUFFIXED_KEYWORDS: &[&str] = &["_", "crate", "extern", "self", "Self", "super"];

/// The identifier for `name`, which may already carry prost-build's `r#` prefix.
///
/// Keywords become raw identifiers or get a trailing `_`; anything else that is not an ASCII
/// identifier is an error naming `what` (for the message).
pub(crate) fn ident(name: &str, what: &str) -> Result<Ident, Error> {
    let bare = name.strip_prefix("r#").unwrap_or(name);
    if !is_identifier(bare) {
        return Err(Error::InvalidIdentifier {
            name: name.to_owned(),
            what: what.to_owned(),
        });
    }
    Ok(if RAW_KEYWORDS.contains(&bare) {
        Ident::new_raw(bare, Span::call_site())
    } else if SUFFIXED_KEYWORDS.contains(&bare) {
        Ident::new(&format!("{bare}_"), Span::call_site())
    } else {
        Ident::new(bare, Span::call_site())
    })
}

/// Whether `s` is an ASCII identifier: a letter or `_`, then letters, digits or `_`.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name` without a raw-identifier prefix: the text to build derived names from
/// (`r#move` → `move`, so `move_with`, not `r#move_with`).
pub(crate) fn bare(name: &str) -> &str {
    name.strip_prefix("r#").unwrap_or(name)
}

/// `snake_case` of an `UpperCamel` Rust type name, as prost-build spells module names.
pub(crate) fn snake(name: &str) -> String {
    bare(name).to_snake_case()
}

/// The module name prost-build gives the nested items of message `message` (unsanitized).
pub(crate) fn message_module(message: &str) -> String {
    message.to_snake_case()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_id_matches_published_fnv1a_vectors() {
        assert_eq!(method_id(""), 0x811c_9dc5);
        assert_eq!(method_id("a"), 0xe40c_292c);
        assert_eq!(method_id("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn method_id_is_usable_in_const_context() {
        const ID: u32 = method_id("/helloworld.Greeter/SayHello");
        assert_eq!(ID, method_id("/helloworld.Greeter/SayHello"));
        assert_ne!(ID, method_id("/helloworld.Greeter/SayGoodbye"));
    }

    #[test]
    fn ident_makes_keywords_raw_or_suffixed() {
        assert_eq!(ident("move", "t").unwrap().to_string(), "r#move");
        assert_eq!(ident("r#type", "t").unwrap().to_string(), "r#type");
        assert_eq!(ident("self", "t").unwrap().to_string(), "self_");
        assert_eq!(ident("Self", "t").unwrap().to_string(), "Self_");
        assert_eq!(ident("get_thing", "t").unwrap().to_string(), "get_thing");
    }

    #[test]
    fn ident_rejects_non_identifiers_without_panicking() {
        for bad in ["", "1abc", "a-b", "a.b", "é"] {
            assert!(ident(bad, "test").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn snake_follows_prost_module_names() {
        assert_eq!(snake("PlaceSltpOrder"), "place_sltp_order");
        assert_eq!(snake("Index"), "index");
        assert_eq!(snake("HttpService"), "http_service");
        assert_eq!(message_module("FooClient"), "foo_client");
    }
}
