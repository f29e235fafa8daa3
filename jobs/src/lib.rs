//! Job payloads and handlers. Each job lives in its own module; nothing is registered here until its
//! handler exists.
#![forbid(unsafe_code)]
