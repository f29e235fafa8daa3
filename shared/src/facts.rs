//! Asset facts writer.
