//! [`Error`]: what failed during code generation, where, and what to do about it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use miette::Diagnostic;

/// Why code generation failed. Each message says what failed, where, and what to change.
///
/// `Debug` prints the same text as `Display`, so a `build.rs` whose `main` returns
/// `Result<(), Box<dyn Error>>` shows the file, the line and the fix, not a struct. Match on
/// the variants for the details.
///
/// Errors in `.proto` files name the file, line and column:
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("bad.proto"), "syntax = \"proto3\";\nmessage M { int32 x = 1 }\n")?;
/// let err = volley_codegen::configure()
///     .out_dir(dir.path())
///     .compile_protos(&[dir.path().join("bad.proto")], &[dir.path()])
///     .unwrap_err();
/// assert!(matches!(err, volley_codegen::Error::Proto(_)));
/// assert!(err.to_string().contains("bad.proto:2:"), "{err}");
/// assert_eq!(format!("{err:?}"), err.to_string());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `.proto` file is missing, does not parse, imports a file that is not found, or
    /// defines something invalid.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// A `.proto` file to compile exists neither at its path nor in an include directory.
    #[error(
        "proto file `{}` not found, neither at that path (relative paths start at `{}`) nor in \
         the include directories [{}]; check the path given to compile_protos",
        path.display(),
        cwd.display(),
        includes.iter().map(|i| format!("'{}'", i.display())).collect::<Vec<_>>().join(", ")
    )]
    ProtoNotFound {
        /// The path given.
        path: PathBuf,
        /// The working directory (the crate's directory in a build script).
        cwd: PathBuf,
        /// The include directories.
        includes: Vec<PathBuf>,
    },
    /// Two methods compiled together have the same 32-bit method id.
    #[error(
        "methods `{first}` and `{second}`{at} have the same method id {id:#010x} (FNV-1a of the \
         full name), so one server could not serve both; rename one of them in its .proto file"
    )]
    MethodIdCollision {
        /// The shared id.
        id: u32,
        /// The full name of the method seen first.
        first: String,
        /// The full name of the method seen second.
        second: String,
        /// Where they are declared (` (declared at a.proto:3 and b.proto:9)`), or empty when the
        /// descriptors carry no source info.
        at: String,
    },
    /// Two protobuf names map to the same Rust name in one scope.
    #[error(
        "{first} and {second}{at} both become the Rust name `{rust_name}` in {scope}; rename one \
         of them in its .proto file"
    )]
    NameClash {
        /// The Rust name both map to.
        rust_name: String,
        /// Where the clash is (a service or a package module).
        scope: String,
        /// What claimed the name first.
        first: String,
        /// What claimed it second.
        second: String,
        /// Where the rpcs or services named are declared (` (declared at a.proto:3 and
        /// a.proto:4)`), or empty when unknown.
        at: String,
    },
    /// A name from a descriptor is not a valid Rust identifier.
    #[error(
        "{what} `{name}` is not a valid identifier; protobuf names are ASCII letters, digits \
         and `_`: check the descriptor set"
    )]
    InvalidIdentifier {
        /// The name.
        name: String,
        /// What it names.
        what: String,
    },
    /// A Rust type path or attribute given to or produced by the generator does not parse.
    #[error("{what} `{text}` is not valid Rust ({reason}); {fix}")]
    InvalidRust {
        /// What the text is.
        what: String,
        /// The text.
        text: String,
        /// The parser's complaint.
        reason: String,
        /// What to change.
        fix: String,
    },
    /// Neither `out_dir` was set nor `OUT_DIR` (set by Cargo for build scripts).
    #[error(
        "OUT_DIR is not set: call volley_codegen from build.rs, or set \
         volley_codegen::configure().out_dir(..)"
    )]
    OutDirUnset,
    /// prost-build failed: an invalid option (such as an `extern_path`) or a file that could
    /// not be written.
    #[error(
        "prost-build failed: {0}; check the options passed to volley_codegen::configure() and \
         that the output directory is writable"
    )]
    Prost(#[source] io::Error),
}

/// The `Display` text: `main` returning this error prints it with `Debug`.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A `.proto` file is missing, malformed or invalid. `Display` (and `Debug`, which prints the
/// same) gives the file, line and column, the offending line, and a hint.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let proto = dir.path().join("orders.proto");
/// std::fs::write(&proto, "syntax = \"proto3\";\nmessage Order {\n  Money price = 1;\n}\n")?;
/// let err = volley_codegen::configure()
///     .out_dir(dir.path())
///     .compile_protos(&[&proto], &[dir.path()])
///     .unwrap_err();
/// let volley_codegen::Error::Proto(err) = err else { panic!("{err}") };
/// assert_eq!(err.file(), Some(proto.as_path()));
/// assert_eq!((err.line(), err.column()), (Some(3), Some(3)));
/// assert!(err.to_string().contains("name 'Money' is not defined"));
/// assert!(err.to_string().contains("    3 |   Money price = 1;"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProtoError {
    /// The file, as found on disk when possible.
    file: Option<PathBuf>,
    /// 1-based line and column, when protox points at a position.
    position: Option<(usize, usize)>,
    /// The offending line of the file.
    snippet: Option<String>,
    /// What a user should change.
    help: String,
    /// protox's error; its message is the first line of `Display`.
    source: protox::Error,
}

impl ProtoError {
    /// Wraps a protox error, locating it on disk through `includes`.
    pub(crate) fn new(source: protox::Error, includes: &[PathBuf]) -> Self {
        let position = locate(&source);
        let file = source.file().map(|name| on_disk(name, includes));
        let snippet = file.as_deref().zip(position).and_then(|(path, (line, _))| source_line(path, line));
        let help = help(&source, includes);
        Self {
            file,
            position,
            snippet,
            help,
            source,
        }
    }

    /// The file the error is in, when known.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The 1-based line of the error, when known.
    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    /// The 1-based column of the error, when known.
    pub fn column(&self) -> Option<usize> {
        self.position.map(|(_, column)| column)
    }

    /// protox's error, for its `miette` diagnostic.
    pub fn protox(&self) -> &protox::Error {
        &self.source
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((line, column))) => write!(f, "{}:{line}:{column}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, _) => {}
        }
        write!(f, "{}", self.source)?;
        if let (Some(snippet), Some((line, _))) = (&self.snippet, self.position) {
            write!(f, "\n{line:>5} | {snippet}")?;
        }
        write!(f, "\n  help: {}", self.help)
    }
}

/// The `Display` text, as for [`Error`].
impl fmt::Debug for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ProtoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Where `err` points: 1-based (line, column) of its primary label (else its last, which for
/// "defined twice" errors is the second definition).
fn locate(err: &protox::Error) -> Option<(usize, usize)> {
    let source = err.source_code()?;
    let labels: Vec<_> = err.labels()?.collect();
    let label = labels.iter().find(|label| label.primary()).or(labels.last())?;
    let contents = source.read_span(label.inner(), 0, 0).ok()?;
    Some((contents.line() + 1, contents.column() + 1))
}

/// Line `line` (1-based) of the file at `path`, if it can be read.
fn source_line(path: &Path, line: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().nth(line.checked_sub(1)?)?;
    Some(line.trim_end().to_owned())
}

/// The path of file `name` (relative to an include directory) in the first include that has it.
fn on_disk(name: &str, includes: &[PathBuf]) -> PathBuf {
    includes
        .iter()
        .map(|include| include.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A hint for `err`: protox's own when it has one, else one per kind of failure.
fn help(err: &protox::Error, includes: &[PathBuf]) -> String {
    if let Some(help) = err.help() {
        return help.to_string();
    }
    let dirs = includes
        .iter()
        .map(|dir| format!("'{}'", dir.display()))
        .collect::<Vec<_>>()
        .join(", ");
    let message = err.to_string();
    if message.starts_with("import ") {
        format!(
            "fix the import path, or add the directory that holds the imported file to the \
             include directories (now: [{dirs}])"
        )
    } else if err.is_file_not_found() {
        format!(
            "check the file name, and that the file is inside one of the include directories \
             (now: [{dirs}])"
        )
    } else if err.is_io() {
        "check that the file exists and is readable".to_owned()
    } else if err.is_parse() {
        "fix the syntax at this position (see the protobuf language guide)".to_owned()
    } else {
        "fix the definition at this position: define or import every type used, and keep names \
         and field numbers unique"
            .to_owned()
    }
}
