//! The combined probe: one POSIX `sh` script sent on the channel's stdin
//! ([`script`]), its framed output ([`frames`]) and the typed facts read from
//! it ([`facts`]). Rendering and parsing are pure; running it is the
//! transport's job.

pub mod facts;
pub mod frames;
pub mod script;

pub use facts::Facts;
pub use script::{Probe, render};
