//! Method ids: a stable 32-bit id from a method's full name (docs/PROTOCOL.md, "Method ids").

/// Identifies a method on the wire: FNV-1a (32-bit) of the full name `/package.Service/Method`.
///
/// The id is computed at compile time by generated code. Two methods of one server with the same
/// id are a collision: code generation fails naming both, and `Server` refuses to register the
/// second.
///
/// ```
/// use volley::MethodId;
///
/// const SAY_HELLO: MethodId = MethodId::from_name("/helloworld.Greeter/SayHello");
/// assert_eq!(SAY_HELLO, MethodId::from_name("/helloworld.Greeter/SayHello"));
/// assert_ne!(SAY_HELLO, MethodId::from_name("/helloworld.Greeter/SayGoodbye"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MethodId(pub u32);

/// FNV-1a 32-bit offset basis.
const FNV_OFFSET_BASIS: u32 = 0x811C_9DC5;
/// FNV-1a 32-bit prime.
const FNV_PRIME: u32 = 0x0100_0193;

impl MethodId {
    /// The id of the method with full name `name` (`/package.Service/Method`).
    pub const fn from_name(name: &str) -> Self {
        let bytes = name.as_bytes();
        let mut hash = FNV_OFFSET_BASIS;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u32;
            hash = hash.wrapping_mul(FNV_PRIME);
            i += 1;
        }
        Self(hash)
    }
}

impl std::fmt::Display for MethodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_id_matches_published_fnv1a_vectors() {
        // Reference values of FNV-1a 32 for "" and "a".
        assert_eq!(MethodId::from_name("").0, 0x811c_9dc5);
        assert_eq!(MethodId::from_name("a").0, 0xe40c_292c);
        assert_eq!(MethodId::from_name("foobar").0, 0xbf9c_f968);
    }
}
