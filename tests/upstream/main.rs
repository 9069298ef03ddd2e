//! Every upstream client operation against the embedded credential store over real HTTP.

mod akamai;
mod prefactor;
mod resilience;
mod trend;
mod zenml;
