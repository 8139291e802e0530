//! Stand-ins for the providers Herald delivers through.
//!
//! Herald's tests and load tests should exercise the same code path as
//! production: a real client, a real socket, a real wire protocol. Mocking the
//! provider client would skip exactly the part that breaks in practice
//! (framing, encoding, retries on a 4xx, connection reuse), so each stand-in
//! here is a small local server that speaks its provider's protocol, records
//! what it was sent, and lets a test assert that a message arrived exactly once.
//! Its behaviour can be flipped mid-test (accept, fail temporarily, fail
//! permanently) to drive retry and give-up paths.
//!
//! Today there is [`smtp`]. Stand-ins for APNs, FCM and a Twilio-style SMS API
//! over HTTP will live here too, one module each, with the same shape: start on
//! `127.0.0.1:0`, hand out the address, expose what was received.

pub mod smtp;
