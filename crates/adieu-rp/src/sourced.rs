//! The failure types of the pluggable parts (keys, replay cache, session index): a message for
//! logs and answers, and the underlying error kept as [`std::error::Error::source`].

/// Defines a failure type: `$name`, shown as `$prefix: message`, with `new`, `with_source` and
/// `message`. Two failures are equal when their messages are.
macro_rules! sourced_error {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $path:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            message: String,
            source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
        }

        impl $name {
            #[doc = concat!("A failure with this message and no underlying error.\n\n```\nlet e = adieu_rp::", $path, "::new(\"offline\");\nassert_eq!(e.message(), \"offline\");\n```")]
            pub fn new(message: impl Into<String>) -> Self {
                $name { message: message.into(), source: None }
            }

            #[doc = concat!("A failure with this message that keeps `source` as its cause.\n\n```\nuse std::error::Error;\nlet io = std::io::Error::other(\"connection reset\");\nlet e = adieu_rp::", $path, "::with_source(\"fetch failed\", io);\nassert_eq!(e.source().unwrap().to_string(), \"connection reset\");\n```")]
            pub fn with_source(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
                $name { message: message.into(), source: Some(std::sync::Arc::new(source)) }
            }

            #[doc = concat!("What failed, without the prefix of its display.\n\n```\nlet e = adieu_rp::", $path, "::new(\"down\");\nassert_eq!(e.message(), \"down\");\n```")]
            pub fn message(&self) -> &str {
                &self.message
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, ": {}"), self.message)
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.message == other.message
            }
        }

        impl Eq for $name {}
    };
}

pub(crate) use sourced_error;
