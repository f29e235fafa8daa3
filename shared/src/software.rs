//! Software writer.
