//! The subset of Structured Field Values (RFC 8941) that HTTP Message
//! Signatures need: dictionaries whose members are items or inner lists,
//! with parameters; bare items of type integer, string, token, byte
//! sequence and boolean (decimals are refused). Parsing is strict and
//! bounded: a field longer than [`MAX_FIELD`] bytes, more than
//! [`MAX_MEMBERS`] members, [`MAX_ITEMS`] items in an inner list or
//! [`MAX_PARAMS`] parameters, duplicate keys, or any syntax error is
//! refused; nothing here panics or indexes out of bounds.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::string_slice
)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use twinshield_shield_macros::diversify;

/// Longest field value parsed, bytes.
pub const MAX_FIELD: usize = 4096;
/// Most members of a dictionary.
pub const MAX_MEMBERS: usize = 8;
/// Most items of an inner list.
pub const MAX_ITEMS: usize = 16;
/// Most parameters of an item or inner list.
pub const MAX_PARAMS: usize = 16;
/// Longest key, bytes.
const MAX_KEY: usize = 64;
/// Longest string or token, bytes.
const MAX_STRING: usize = 512;
/// Most digits of an integer (RFC 8941 §3.3.1).
const MAX_DIGITS: usize = 15;

/// Why a structured field did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SfError(pub &'static str);

/// A bare item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bare {
    /// An integer (at most 15 digits).
    Integer(i64),
    /// A string (printable ASCII).
    String(String),
    /// A token.
    Token(String),
    /// A byte sequence.
    Bytes(Vec<u8>),
    /// A boolean.
    Boolean(bool),
}

/// Parameters, in order, keys unique.
pub type Params = Vec<(String, Bare)>;

/// An item with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value.
    pub value: Bare,
    /// Its parameters.
    pub params: Params,
}

/// A dictionary member's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// A single item.
    Item(Item),
    /// An inner list and its parameters.
    InnerList(Vec<Item>, Params),
}

/// A dictionary, in order, keys unique.
pub type Dictionary = Vec<(String, Member)>;

struct Cursor<'a> {
    rest: &'a [u8],
}

#[diversify]
impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let (&c, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }
}

/// Parses a dictionary field value (RFC 8941 §4.2.2).
#[diversify]
pub fn parse_dictionary(input: &str) -> Result<Dictionary, SfError> {
    if input.len() > MAX_FIELD {
        return Err(SfError("field too long"));
    }
    let mut c = Cursor {
        rest: input.as_bytes(),
    };
    c.skip_sp();
    let mut dict: Dictionary = Vec::new();
    while c.peek().is_some() {
        let key = parse_key(&mut c)?;
        let member = if c.eat(b'=') {
            parse_item_or_inner_list(&mut c)?
        } else {
            Member::Item(Item {
                value: Bare::Boolean(true),
                params: parse_params(&mut c)?,
            })
        };
        if dict.iter().any(|(k, _)| *k == key) {
            return Err(SfError("duplicate dictionary key"));
        }
        if dict.len() >= MAX_MEMBERS {
            return Err(SfError("too many dictionary members"));
        }
        dict.push((key, member));
        c.skip_ows();
        if c.peek().is_none() {
            break;
        }
        if !c.eat(b',') {
            return Err(SfError("expected `,` between dictionary members"));
        }
        c.skip_ows();
        if c.peek().is_none() {
            return Err(SfError("trailing `,`"));
        }
    }
    Ok(dict)
}

#[diversify]
fn parse_item_or_inner_list(c: &mut Cursor<'_>) -> Result<Member, SfError> {
    if c.peek() == Some(b'(') {
        return parse_inner_list(c);
    }
    Ok(Member::Item(parse_item(c)?))
}

#[diversify]
fn parse_inner_list(c: &mut Cursor<'_>) -> Result<Member, SfError> {
    if !c.eat(b'(') {
        return Err(SfError("expected `(`"));
    }
    let mut items = Vec::new();
    loop {
        c.skip_sp();
        if c.eat(b')') {
            let params = parse_params(c)?;
            return Ok(Member::InnerList(items, params));
        }
        if items.len() >= MAX_ITEMS {
            return Err(SfError("too many inner-list items"));
        }
        items.push(parse_item(c)?);
        if !matches!(c.peek(), Some(b' ' | b')')) {
            return Err(SfError("expected ` ` or `)` in inner list"));
        }
    }
}

#[diversify]
fn parse_item(c: &mut Cursor<'_>) -> Result<Item, SfError> {
    let value = parse_bare(c)?;
    let params = parse_params(c)?;
    Ok(Item { value, params })
}

#[diversify]
fn parse_params(c: &mut Cursor<'_>) -> Result<Params, SfError> {
    let mut params: Params = Vec::new();
    while c.eat(b';') {
        c.skip_sp();
        let key = parse_key(c)?;
        let value = if c.eat(b'=') {
            parse_bare(c)?
        } else {
            Bare::Boolean(true)
        };
        if params.iter().any(|(k, _)| *k == key) {
            return Err(SfError("duplicate parameter"));
        }
        if params.len() >= MAX_PARAMS {
            return Err(SfError("too many parameters"));
        }
        params.push((key, value));
    }
    Ok(params)
}

#[diversify]
fn parse_key(c: &mut Cursor<'_>) -> Result<String, SfError> {
    match c.peek() {
        Some(b'a'..=b'z' | b'*') => {}
        _ => return Err(SfError("a key must start with a lowercase letter or `*`")),
    }
    let mut key = String::new();
    while let Some(ch) = c.peek() {
        if !matches!(ch, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') {
            break;
        }
        if key.len() >= MAX_KEY {
            return Err(SfError("key too long"));
        }
        key.push(char::from(ch));
        c.bump();
    }
    Ok(key)
}

#[diversify]
fn parse_bare(c: &mut Cursor<'_>) -> Result<Bare, SfError> {
    match c.peek() {
        Some(b'-' | b'0'..=b'9') => parse_integer(c),
        Some(b'"') => parse_string(c),
        Some(b':') => parse_bytes(c),
        Some(b'?') => parse_boolean(c),
        Some(b'A'..=b'Z' | b'a'..=b'z' | b'*') => parse_token(c),
        Some(_) => Err(SfError("unexpected character")),
        None => Err(SfError("unexpected end of field")),
    }
}

#[diversify]
fn parse_integer(c: &mut Cursor<'_>) -> Result<Bare, SfError> {
    let negative = c.eat(b'-');
    let mut value: i64 = 0;
    let mut digits = 0usize;
    while let Some(ch @ b'0'..=b'9') = c.peek() {
        if digits >= MAX_DIGITS {
            return Err(SfError("integer too long"));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(ch.wrapping_sub(b'0'))))
            .ok_or(SfError("integer out of range"))?;
        digits = digits.saturating_add(1);
        c.bump();
    }
    if digits == 0 {
        return Err(SfError("expected a digit"));
    }
    if c.peek() == Some(b'.') {
        return Err(SfError("decimals are not accepted"));
    }
    Ok(Bare::Integer(if negative {
        value.checked_neg().ok_or(SfError("integer out of range"))?
    } else {
        value
    }))
}

#[diversify]
fn parse_string(c: &mut Cursor<'_>) -> Result<Bare, SfError> {
    if !c.eat(b'"') {
        return Err(SfError("expected `\"`"));
    }
    let mut s = String::new();
    loop {
        let ch = c.bump().ok_or(SfError("unterminated string"))?;
        let ch = match ch {
            b'"' => return Ok(Bare::String(s)),
            b'\\' => match c.bump() {
                Some(e @ (b'"' | b'\\')) => e,
                _ => return Err(SfError("bad escape in string")),
            },
            0x20..=0x7e => ch,
            _ => return Err(SfError("string holds a non-printable character")),
        };
        if s.len() >= MAX_STRING {
            return Err(SfError("string too long"));
        }
        s.push(char::from(ch));
    }
}

#[diversify]
fn parse_token(c: &mut Cursor<'_>) -> Result<Bare, SfError> {
    let mut s = String::new();
    while let Some(ch) = c.peek() {
        let tchar = ch.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&ch);
        if !tchar {
            break;
        }
        if s.len() >= MAX_STRING {
            return Err(SfError("token too long"));
        }
        s.push(char::from(ch));
        c.bump();
    }
    Ok(Bare::Token(s))
}

#[diversify]
fn parse_bytes(c: &mut Cursor<'_>) -> Result<Bare, SfError> {
    if !c.eat(b':') {
        return Err(SfError("expected `:`"));
    }
    let mut b64 = Vec::new();
    loop {
        match c.bump() {
            Some(b':') => break,
            Some(ch) if ch.is_ascii_alphanumeric() || matches!(ch, b'+' | b'/' | b'=') => {
                if b64.len() >= MAX_STRING {
                    return Err(SfError("byte sequence too long"));
                }
                b64.push(ch);
            }
            Some(_) => return Err(SfError("byte sequence holds a non-base64 character")),
            None => return Err(SfError("unterminated byte sequence")),
        }
    }
    STANDARD
        .decode(&b64)
        .map(Bare::Bytes)
        .map_err(|_| SfError("byte sequence is not canonical base64"))
}

#[diversify]
fn parse_boolean(c: &mut Cursor<'_>) -> Result<Bare, SfError> {
    if !c.eat(b'?') {
        return Err(SfError("expected `?`"));
    }
    match c.bump() {
        Some(b'1') => Ok(Bare::Boolean(true)),
        Some(b'0') => Ok(Bare::Boolean(false)),
        _ => Err(SfError("a boolean is ?0 or ?1")),
    }
}

/// Serializes a bare item (RFC 8941 §4.1.3).
#[diversify]
pub fn serialize_bare(v: &Bare, out: &mut String) {
    match v {
        Bare::Integer(i) => out.push_str(&i.to_string()),
        Bare::String(s) => {
            out.push('"');
            for ch in s.chars() {
                if ch == '"' || ch == '\\' {
                    out.push('\\');
                }
                out.push(ch);
            }
            out.push('"');
        }
        Bare::Token(t) => out.push_str(t),
        Bare::Bytes(b) => {
            out.push(':');
            out.push_str(&STANDARD.encode(b));
            out.push(':');
        }
        Bare::Boolean(b) => out.push_str(if *b { "?1" } else { "?0" }),
    }
}

/// Serializes parameters (a `true` value is the bare key).
#[diversify]
pub fn serialize_params(params: &[(String, Bare)], out: &mut String) {
    for (k, v) in params {
        out.push(';');
        out.push_str(k);
        if *v != Bare::Boolean(true) {
            out.push('=');
            serialize_bare(v, out);
        }
    }
}

/// Serializes an inner list with its parameters (RFC 8941 §4.1.1.1).
#[diversify]
pub fn serialize_inner_list(items: &[Item], params: &[(String, Bare)]) -> String {
    let mut out = String::from("(");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        serialize_bare(&item.value, &mut out);
        serialize_params(&item.params, &mut out);
    }
    out.push(')');
    serialize_params(params, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    use super::*;

    #[test]
    fn parses_a_signature_input_and_serializes_it_back() {
        let text = r#"sig1=("@method" "@path" "content-digest");created=1618884473;keyid="test-key";alg="ed25519""#;
        let d = parse_dictionary(text).unwrap();
        assert_eq!(d.len(), 1);
        let (label, Member::InnerList(items, params)) = &d[0] else {
            panic!("not an inner list: {d:?}");
        };
        assert_eq!(label, "sig1");
        assert_eq!(items.len(), 3);
        assert_eq!(params[0], ("created".into(), Bare::Integer(1_618_884_473)));
        let back = format!("sig1={}", serialize_inner_list(items, params));
        assert_eq!(back, text);
    }

    #[test]
    fn parses_items_of_every_supported_type() {
        let d = parse_dictionary(r#"a=1, b="x\"y", c=tok/en, d=:AQID:, e=?0, f;p=-5"#).unwrap();
        let values: Vec<Bare> = d
            .into_iter()
            .map(|(_, m)| match m {
                Member::Item(i) => i.value,
                Member::InnerList(..) => panic!("inner list"),
            })
            .collect();
        assert_eq!(
            values,
            vec![
                Bare::Integer(1),
                Bare::String("x\"y".into()),
                Bare::Token("tok/en".into()),
                Bare::Bytes(vec![1, 2, 3]),
                Bare::Boolean(false),
                Bare::Boolean(true),
            ]
        );
    }

    #[test]
    fn refuses_malformed_and_oversized_fields() {
        let long = format!("a=\"{}\"", "x".repeat(MAX_STRING + 1));
        let many = (0..=MAX_MEMBERS)
            .map(|i| format!("k{i}=1"))
            .collect::<Vec<_>>()
            .join(", ");
        let huge = "a".repeat(MAX_FIELD + 1);
        for bad in [
            "",
            "A=1",
            "a=1,",
            "a=1,,b=2",
            "a=1 b=2",
            "a=1, a=2",
            "a=1.5",
            "a=1234567890123456",
            "a=\"unterminated",
            "a=\"bad\\n\"",
            "a=:AQI=x:",
            "a=:AQ:",
            "a=?2",
            "a=(1 2",
            "a=(1;p;p)",
            "a=\"\u{e9}\"",
            "a=-",
            long.as_str(),
            many.as_str(),
            huge.as_str(),
        ] {
            let r = parse_dictionary(bad);
            // The empty field is an empty dictionary; everything else fails.
            if bad.is_empty() {
                assert_eq!(r, Ok(Vec::new()));
            } else {
                assert!(r.is_err(), "accepted {bad:?}: {r:?}");
            }
        }
    }
}
