//! Where services and rpcs are declared in the `.proto` files, from the descriptors' source info
//! (protox keeps it; `protoc` does with `--include_source_info`): errors about names found after
//! parsing say `file.proto:line` too.

use std::collections::HashMap;

use prost_types::FileDescriptorSet;

use crate::error::Error;

/// Field numbers of `FileDescriptorProto.service` and `ServiceDescriptorProto.method`, the steps
/// of a source-info path to a service and to one of its rpcs.
const SERVICE_FIELD: i32 = 6;
const METHOD_FIELD: i32 = 2;

/// `file.proto:line` of every service (by full name, `pkg.Svc`) and rpc (`/pkg.Svc/Method`).
#[derive(Debug, Default)]
pub(crate) struct Locations {
    by_name: HashMap<String, String>,
}

impl Locations {
    pub(crate) fn new(fds: &FileDescriptorSet) -> Self {
        let mut by_name = HashMap::new();
        for file in &fds.file {
            let Some(info) = &file.source_code_info else { continue };
            let lines: HashMap<&[i32], i32> = info
                .location
                .iter()
                .filter_map(|location| Some((location.path.as_slice(), *location.span.first()?)))
                .collect();
            let prefix = if file.package().is_empty() {
                String::new()
            } else {
                format!("{}.", file.package())
            };
            for (s, service) in file.service.iter().enumerate() {
                let service_name = format!("{prefix}{}", service.name());
                let service_path = [SERVICE_FIELD, s as i32];
                if let Some(line) = lines.get(&service_path[..]) {
                    by_name.insert(service_name.clone(), format!("{}:{}", file.name(), line + 1));
                }
                for (m, method) in service.method.iter().enumerate() {
                    let path = [SERVICE_FIELD, s as i32, METHOD_FIELD, m as i32];
                    if let Some(line) = lines.get(&path[..]) {
                        let full_name = format!("/{service_name}/{}", method.name());
                        by_name.insert(full_name, format!("{}:{}", file.name(), line + 1));
                    }
                }
            }
        }
        Self { by_name }
    }

    /// Where the things an error names are declared, as ` (declared at a.proto:3 and b.proto:9)`,
    /// or empty when the descriptors carry no source info for them.
    fn declared_at(&self, names: [&str; 2]) -> String {
        let found: Vec<&str> = names
            .iter()
            .filter_map(|name| self.by_name.get(*name).map(String::as_str))
            .collect();
        match found.as_slice() {
            [] => String::new(),
            [one] => format!(" (declared at {one})"),
            [first, second, ..] => format!(" (declared at {first} and {second})"),
        }
    }

    /// `error` with where its names are declared, for the errors found after parsing.
    pub(crate) fn annotate(&self, error: Error) -> Error {
        match error {
            Error::MethodIdCollision { id, first, second, .. } => {
                let at = self.declared_at([&first, &second]);
                Error::MethodIdCollision { id, first, second, at }
            }
            Error::NameClash {
                rust_name,
                scope,
                first,
                second,
                ..
            } => {
                let at = self.declared_at([quoted(&first), quoted(&second)]);
                Error::NameClash {
                    rust_name,
                    scope,
                    first,
                    second,
                    at,
                }
            }
            other => other,
        }
    }
}

/// The name between the first pair of backticks of a description such as "rpc `/pkg.Svc/Get`".
fn quoted(description: &str) -> &str {
    description.split('`').nth(1).unwrap_or(description)
}
