//! Tests of the embedded credential store over real HTTP on loopback.

mod akamai;
mod bad_input;
mod faults_and_admin;
mod persistence;
mod prefactor;
mod trend;
mod zenml;
