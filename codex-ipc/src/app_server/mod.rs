//! The app-server v2 protocol as we serve it: object shapes
//! ([`objects`]), the mapping of core events to notifications ([`events`]),
//! and the method table ([`methods`]).

pub mod events;
pub mod methods;
pub mod objects;
