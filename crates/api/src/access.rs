//! What each route asks of a request, as the OpenAPI document generated from the route table
//! declares it: each operation's `security`. `()` marks an open route (probes, metrics, the
//! document); otherwise the role listed (`ingest`, `read`, or an operator's: `catalogue`, `users`,
//! `operations`, `tokens`, `admin`) is the scope a key needs.
//! A route whose access cannot be read, or that the document does not hold, needs `admin`:
//! the map fails closed.

use std::collections::HashMap;

use axum::http::Method;
use serde_json::Value;

use crate::keys::Scope;

/// What a route asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open: no key, never shed, never metered.
    Open,
    /// A key with this scope (or `admin`).
    Key(Scope),
}

/// The API's generated document and the access of each route in it.
#[derive(Debug, Clone)]
pub struct ApiDocument {
    /// The OpenAPI document as served at `/openapi.json`.
    pub json: String,
    /// By path pattern, then method: looked up without allocating, on every request.
    access: HashMap<String, Vec<(Method, Access)>>,
}

impl ApiDocument {
    /// Reads the access of every operation of `json`, an OpenAPI document.
    pub fn new(json: String) -> ApiDocument {
        let document: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        let mut access: HashMap<String, Vec<(Method, Access)>> = HashMap::new();
        let paths = document["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in paths {
            let Some(operations) = item.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                access
                    .entry(path.clone())
                    .or_default()
                    .push((method, operation_access(operation)));
            }
        }
        ApiDocument { json, access }
    }

    /// The access of the route `path` (a matched pattern) under `method`.
    pub fn access(&self, method: &Method, path: &str) -> Access {
        self.access
            .get(path)
            .and_then(|methods| methods.iter().find(|(known, _)| known == method))
            .map_or(Access::Key(Scope::Admin), |(_, access)| *access)
    }

    /// Every route of the document: its method and path pattern.
    pub fn routes(&self) -> Vec<(Method, String)> {
        self.access
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .map(move |(method, _)| (method.clone(), path.clone()))
            })
            .collect()
    }
}

/// The access an operation's `security` declares (see the module docs).
fn operation_access(operation: &Value) -> Access {
    let requirements = operation["security"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if requirements.iter().any(|requirement| {
        requirement
            .as_object()
            .is_some_and(|schemes| schemes.is_empty())
    }) {
        return Access::Open;
    }
    let scope = requirements
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|schemes| schemes.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(Scope::parse)
        .next();
    Access::Key(scope.unwrap_or(Scope::Admin))
}
