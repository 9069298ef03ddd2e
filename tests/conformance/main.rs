//! Conformance of our implementations with the vendors' published references.

mod edgegrid;
