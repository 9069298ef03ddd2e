//! Chaos: the operator SIGKILLed at random moments while 200 resources of the four key
//! kinds are created, rotated and deleted (`kills`), and the credential store failing,
//! throttling and slowing requests (`faults`). Each test has its own namespace, credential
//! store and operator processes scoped to that namespace, so nothing else reconciles its
//! objects.
//!
//! Its own test binary for the same reason as tests/crash: no shared cluster-wide operator.

mod faults;
mod fleet;
mod inventory;
mod kills;
mod report;
mod rng;
mod world;
