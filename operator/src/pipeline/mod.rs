//! The steps every controller shares. A controller reads what its resource refers to, validates
//! it and builds the desired objects (its own pure modules), then uses these to **apply** them by
//! server-side apply, **prune** what an earlier pass made and this one did not, and **report**
//! status and events from what the API server accepted.

pub mod apply;
pub mod conditions;
pub mod events;
pub mod finalizer;
pub mod ownership;
pub mod prune;
pub mod status;
