//! The OpenAPI 3.0 document, generated from the route table and the
//! schemas of the types the handlers serialise (kept beside each other
//! here and checked against real responses by the tests and schemathesis).

use crate::routes::{Body, ROUTES, Route};
use serde_json::{Map, Value, json};
use twinshield_shield_macros::diversify;

#[diversify]
fn number() -> Value {
    json!({"type": "number"})
}

#[diversify]
fn nullable_number() -> Value {
    json!({"type": "number", "nullable": true})
}

// Long: one `json!` literal, the table of every response schema: read and
// kept in step with the serialised types as one table, it would only be
// scattered by splitting.
#[diversify]
fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object", "required": ["error"], "additionalProperties": false,
            "properties": {"error": {"type": "string"}}
        },
        "Health": {
            "type": "object", "required": ["status"], "additionalProperties": false,
            "properties": {"status": {"type": "string", "enum": ["ok"]}}
        },
        "OpenApi": {"type": "object"},
        "Whoami": {
            "type": "object", "required": ["token_id", "role"], "additionalProperties": false,
            "properties": {
                "token_id": {"type": "string"},
                "role": {"type": "string", "enum": ["viewer", "operator", "admin"]}
            }
        },
        "Twin": {
            "type": "object", "required": ["name", "version", "channels"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "channels": {"type": "array", "items": {
                    "type": "object", "required": ["name", "unit"],
                    "additionalProperties": false,
                    "properties": {"name": {"type": "string"}, "unit": {"type": "string"}}
                }}
            }
        },
        "State": {
            "type": "object",
            "required": ["time_s", "samples", "active_alarms", "channels"],
            "additionalProperties": false,
            "properties": {
                "time_s": number(),
                "samples": {"type": "integer", "minimum": 0},
                "active_alarms": {"type": "integer", "minimum": 0},
                "channels": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name", "unit", "measured", "estimate", "residual", "threshold"],
                    "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string"},
                        "unit": {"type": "string"},
                        "measured": nullable_number(),
                        "estimate": nullable_number(),
                        "residual": nullable_number(),
                        "threshold": number()
                    }
                }}
            }
        },
        "History": {
            "type": "object", "required": ["channel", "series", "step_s", "points"],
            "additionalProperties": false,
            "properties": {
                "channel": {"type": "string"},
                "series": {"type": "string", "enum": ["measured", "residual"]},
                "step_s": number(),
                "points": {"type": "array", "items": {
                    "type": "object", "required": ["time_s", "min", "mean", "max"],
                    "additionalProperties": false,
                    "properties": {
                        "time_s": number(), "min": number(), "mean": number(), "max": number()
                    }
                }}
            }
        },
        "Alarm": {
            "type": "object",
            "required": ["id", "detector", "channels", "raised_at_s", "cleared_at_s", "acknowledged"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "integer", "minimum": 0},
                "detector": {"type": "string"},
                "channels": {"type": "array", "items": {"type": "string"}},
                "raised_at_s": number(),
                "cleared_at_s": nullable_number(),
                "acknowledged": {"type": "boolean"}
            }
        },
        "Alarms": {
            "type": "object", "required": ["alarms"], "additionalProperties": false,
            "properties": {"alarms": {"type": "array", "items": {"$ref": "#/components/schemas/Alarm"}}}
        },
        "Security": {
            "type": "object", "required": ["protected", "degraded", "findings"],
            "additionalProperties": false,
            "properties": {
                "protected": {"type": "boolean"},
                "degraded": {"type": "boolean"},
                "findings": {"type": "array", "items": {
                    "type": "object", "required": ["class", "action", "what"],
                    "additionalProperties": false,
                    "properties": {
                        "class": {"type": "string"},
                        "action": {"type": "string"},
                        "what": {"type": "string"}
                    }
                }},
                "binding": {
                    "type": "object",
                    "required": ["hardware_components", "hardware_needed", "hardware_bound"],
                    "additionalProperties": false,
                    "properties": {
                        "hardware_components": {"type": "array", "items": {"type": "string"}},
                        "hardware_needed": {"type": "integer", "minimum": 0},
                        "hardware_bound": {"type": "boolean"}
                    }
                }
            }
        },
        "Audit": {
            "type": "object", "required": ["events"], "additionalProperties": false,
            "properties": {"events": {"type": "array", "items": {
                "type": "object", "required": ["time_s", "kind", "what"],
                "additionalProperties": false,
                "properties": {
                    "time_s": number(), "kind": {"type": "string"}, "what": {"type": "string"}
                }
            }}}
        },
        "Ack": {"type": "object", "additionalProperties": false, "properties": {}}
    })
}

#[diversify]
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "No valid token",
        403 => "The token's role may not do this",
        404 => "Not found",
        413 => "Payload too large",
        415 => "Unsupported media type (send application/json)",
        429 => "Too many requests",
        503 => "Unavailable",
        _ => "Refused",
    }
}

/// The whole document.
#[diversify]
pub fn document(version: &str) -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method.name().to_lowercase()] = operation(r);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "twinshield",
            "version": version,
            "description": "The hardened API of a twinshield digital twin. See docs/api.md."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}]
    })
}

/// The operation object of one route: its parameters, responses (the
/// route's own refusals plus those every route or every token-checked route
/// can give), security and request body.
#[diversify]
fn operation(r: &Route) -> Value {
    let mut params: Vec<Value> = r
        .query
        .iter()
        .map(|p| {
            let mut schema = json!({"type": p.kind});
            if !p.values.is_empty() {
                schema["enum"] = json!(p.values);
            }
            json!({"name": p.name, "in": "query", "required": p.required,
                   "schema": schema})
        })
        .collect();
    if r.path.contains("{id}") {
        params.push(json!({"name": "id", "in": "path", "required": true,
                           "schema": {"type": "integer", "minimum": 0}}));
    }
    let mut op = json!({
        "summary": r.summary,
        "operationId": format!("{}{}", r.method.name().to_lowercase(),
            r.path.trim_start_matches("/api/v1").replace(['/', '{', '}', '.'], "_")),
        "parameters": params,
        "responses": responses(r),
    });
    if r.role.is_some() {
        op["security"] = json!([{"bearer": []}]);
    } else {
        op["security"] = json!([]);
    }
    if r.json_body {
        op["requestBody"] = json!({"required": true, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Ack"}}
        }});
    }
    op
}

/// The responses of one route: its body on 200, an error body on each
/// refusal.
#[diversify]
fn responses(r: &Route) -> Map<String, Value> {
    let mut responses = Map::new();
    let ok = match r.body {
        Body::Json(name) => json!({"description": "OK", "content": {
            "application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}
        }}),
        Body::EventStream => json!({"description": "OK", "content": {
            "text/event-stream": {"schema": {"type": "string"}}
        }}),
        Body::Prometheus => json!({"description": "OK", "content": {
            "text/plain": {"schema": {"type": "string"}}
        }}),
    };
    responses.insert("200".into(), ok);
    let mut refusals: Vec<u16> = r.refusals.to_vec();
    refusals.push(429);
    if let Some(role) = r.role {
        refusals.push(401);
        if role > crate::token::Role::Viewer {
            refusals.push(403);
        }
    }
    refusals.sort_unstable();
    refusals.dedup();
    for s in refusals {
        responses.insert(
            s.to_string(),
            json!({"description": reason(s), "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }}),
        );
    }
    responses
}
