//! The API's route table: one list that the router's access control and
//! the OpenAPI document are both built from, so they cannot disagree.

use crate::token::Role;
use twinshield_shield_macros::diversify;

/// HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

#[diversify]
impl Method {
    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// What a route answers with on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// JSON of the named schema (`components/schemas`).
    Json(&'static str),
    /// Server-sent events.
    EventStream,
    /// Prometheus text format.
    Prometheus,
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Name.
    pub name: &'static str,
    /// OpenAPI type (`string`, `number`, `integer`).
    pub kind: &'static str,
    /// Whether it must be given.
    pub required: bool,
    /// The values it may take (an OpenAPI `enum`); empty for any.
    pub values: &'static [&'static str],
}

/// One endpoint of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Method.
    pub method: Method,
    /// Path, with `{name}` for path parameters (axum's syntax too).
    pub path: &'static str,
    /// Least role that may call it; `None` for public endpoints.
    pub role: Option<Role>,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The success body.
    pub body: Body,
    /// Query parameters.
    pub query: &'static [Param],
    /// Whether it takes a JSON body (`{}` only).
    pub json_body: bool,
    /// Refusals it may answer with besides the authentication ones.
    pub refusals: &'static [u16],
}

const NONE: &[Param] = &[];

/// Every endpoint, in the order the OpenAPI document lists them.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/api/v1/health",
        role: None,
        summary: "Liveness; needs no token",
        body: Body::Json("Health"),
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/openapi.json",
        role: None,
        summary: "This document",
        body: Body::Json("OpenApi"),
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/whoami",
        role: Some(Role::Viewer),
        summary: "The calling token's id and role (what the dashboard may offer)",
        body: Body::Json("Whoami"),
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/twin",
        role: Some(Role::Viewer),
        summary: "The twin's public metadata: name, version, channels and units",
        body: Body::Json("Twin"),
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/state",
        role: Some(Role::Viewer),
        summary: "The latest plant measurement, twin estimate and residual per channel",
        body: Body::Json("State"),
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/history",
        role: Some(Role::Viewer),
        summary: "One series of a channel's history (`measured` by default, or `residual`), downsampled to buckets of `step` seconds",
        body: Body::Json("History"),
        query: &[
            Param {
                name: "channel",
                kind: "string",
                required: true,
                values: &[],
            },
            Param {
                name: "from",
                kind: "number",
                required: true,
                values: &[],
            },
            Param {
                name: "to",
                kind: "number",
                required: true,
                values: &[],
            },
            Param {
                name: "step",
                kind: "number",
                required: true,
                values: &[],
            },
            Param {
                name: "series",
                kind: "string",
                required: false,
                values: &["measured", "residual"],
            },
        ],
        json_body: false,
        refusals: &[400, 404, 503],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/alarms",
        role: Some(Role::Viewer),
        summary: "Alarms, newest first",
        body: Body::Json("Alarms"),
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/alarms/{id}/ack",
        role: Some(Role::Operator),
        summary: "Acknowledges an alarm",
        body: Body::Json("Alarm"),
        query: NONE,
        json_body: true,
        refusals: &[400, 404, 413, 415, 503],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/security",
        role: Some(Role::Admin),
        summary: "The runtime shield's status and findings",
        body: Body::Json("Security"),
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/audit",
        role: Some(Role::Admin),
        summary: "The audit log, newest first",
        body: Body::Json("Audit"),
        query: &[Param {
            name: "limit",
            kind: "integer",
            required: false,
            values: &[],
        }],
        json_body: false,
        refusals: &[400, 503],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/live",
        role: Some(Role::Viewer),
        summary: "Server-sent events: `state` at 5 Hz, `alarm` on every change",
        body: Body::EventStream,
        query: NONE,
        json_body: false,
        refusals: &[],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/metrics",
        role: Some(Role::Viewer),
        summary: "Prometheus metrics",
        body: Body::Prometheus,
        query: NONE,
        json_body: false,
        refusals: &[],
    },
];

/// The route `method path` (path as the router matched it), if any.
#[diversify]
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method.name() == method)
}

/// Whether some method of `path` needs a token (so every method of it
/// does: refusals never tell an anonymous client which methods exist).
#[diversify]
pub fn needs_token(path: &str) -> bool {
    ROUTES.iter().any(|r| r.path == path && r.role.is_some())
}
