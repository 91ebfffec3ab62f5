//! The handlers, one file per resource; each declares its path, method, access and answers in
//! its `#[utoipa::path]` attribute, which the route table ([`crate::routes`]) reads.

pub mod admin;
pub mod events;
pub mod experiments;
pub mod items;
pub mod list_options;
pub mod lists;
pub mod probes;
pub mod rules;
pub mod search;
pub mod users;
pub mod web;
