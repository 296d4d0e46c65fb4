//! Wire-independent types shared by every front end: model history items,
//! thread items and turn events.

pub mod events;
pub mod items;
pub mod models;

pub use events::*;
pub use items::*;
pub use models::*;
