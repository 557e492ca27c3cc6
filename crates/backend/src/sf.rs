//! The structured fields (RFC 8941) that HTTP Message Signatures need,
//! parsed by the `sfv` crate with RFC 8941 syntax (no dates, no display
//! strings): dictionaries whose members are items or inner lists, with
//! parameters; bare items of type integer, string, token, byte sequence and
//! boolean. On top of the syntax this module refuses, while `sfv` parses:
//! a field longer than [`MAX_FIELD`] bytes (before parsing), more than
//! [`MAX_MEMBERS`] members, [`MAX_ITEMS`] items in an inner list or
//! [`MAX_PARAMS`] parameters, keys, strings, tokens or byte sequences
//! longer than their caps, decimals, and duplicate keys (RFC 8941 lets
//! the last one win; a field that two parsers could read differently is
//! refused instead). Nothing here panics or indexes out of bounds.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::string_slice
)]

use sfv::visitor::ParameterVisitor;
use sfv::visitor::{DictionaryVisitor, EntryVisitor, InnerListVisitor, ItemVisitor};
use sfv::{BareItemFromInput, KeyRef, RefBareItem, StringRef, TokenRef};
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
/// Longest byte sequence, bytes (what 512 base64 characters hold).
const MAX_BYTES: usize = MAX_STRING / 4 * 3;

/// Why a structured field did not parse or serialize.
#[derive(Debug, thiserror::Error)]
pub enum SfError {
    /// Valid syntax, but beyond a cap or a rule of this protocol (too long,
    /// too many members, a duplicate key, a decimal).
    #[error("{0}")]
    Refused(&'static str),
    /// Not RFC 8941 syntax (what `sfv` reports, with the byte offset).
    #[error("not a structured field: {0}")]
    Syntax(#[source] sfv::Error),
}

#[diversify]
impl SfError {
    /// The reason in a few fixed words (a syntax error's details are in
    /// its source).
    pub fn reason(&self) -> &'static str {
        match self {
            SfError::Refused(r) => r,
            SfError::Syntax(_) => "not a structured field",
        }
    }
}

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

/// A refusal raised inside a visitor. `sfv` keeps only its text, so the
/// visitors also note it in [`Refusals`], where [`parse_dictionary`] finds it.
#[derive(Debug)]
struct Refusal(&'static str);

#[diversify]
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refusal {}

/// The first refusal of one parse.
#[derive(Debug, Default)]
struct Refusals(Option<&'static str>);

#[diversify]
impl Refusals {
    fn refuse<T>(&mut self, reason: &'static str) -> Result<T, Refusal> {
        self.0.get_or_insert(reason);
        Err(Refusal(reason))
    }

    fn key(&mut self, key: &KeyRef) -> Result<String, Refusal> {
        if key.as_str().len() > MAX_KEY {
            return self.refuse("key too long");
        }
        Ok(key.as_str().to_owned())
    }

    fn bare(&mut self, bare: BareItemFromInput<'_>) -> Result<Bare, Refusal> {
        match bare {
            BareItemFromInput::Integer(i) => Ok(Bare::Integer(i64::from(i))),
            BareItemFromInput::String(s) if s.as_str().len() > MAX_STRING => {
                self.refuse("string too long")
            }
            BareItemFromInput::String(s) => Ok(Bare::String(s.as_str().to_owned())),
            BareItemFromInput::Token(t) if t.as_str().len() > MAX_STRING => {
                self.refuse("token too long")
            }
            BareItemFromInput::Token(t) => Ok(Bare::Token(t.as_str().to_owned())),
            BareItemFromInput::ByteSequence(b) if b.len() > MAX_BYTES => {
                self.refuse("byte sequence too long")
            }
            BareItemFromInput::ByteSequence(b) => Ok(Bare::Bytes(b)),
            BareItemFromInput::Boolean(b) => Ok(Bare::Boolean(b)),
            BareItemFromInput::Decimal(_) => self.refuse("decimals are not accepted"),
            BareItemFromInput::Date(_) | BareItemFromInput::DisplayString(_) => {
                self.refuse("dates and display strings are not accepted")
            }
        }
    }
}

/// Builds the [`Dictionary`] as `sfv` parses.
#[derive(Debug, Default)]
struct DictionaryBuilder {
    dict: Dictionary,
    refusals: Refusals,
}

#[diversify]
impl<'de> DictionaryVisitor<'de> for &mut DictionaryBuilder {
    type Out = ();
    type Error = Refusal;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Refusal> {
        let DictionaryBuilder { dict, refusals } = &mut **self;
        let key = refusals.key(key)?;
        if dict.iter().any(|(k, _)| *k == key) {
            return refusals.refuse("duplicate dictionary key");
        }
        if dict.len() >= MAX_MEMBERS {
            return refusals.refuse("too many dictionary members");
        }
        dict.push((key, Member::InnerList(Vec::new(), Vec::new())));
        match dict.last_mut() {
            Some((_, member)) => Ok(MemberSlot { member, refusals }),
            None => refusals.refuse("dictionary member lost"),
        }
    }

    fn finish(self) -> Result<(), Refusal> {
        Ok(())
    }
}

/// One dictionary member being parsed.
struct MemberSlot<'a> {
    member: &'a mut Member,
    refusals: &'a mut Refusals,
}

#[diversify]
impl<'de> EntryVisitor<'de> for MemberSlot<'_> {
    type Error = Refusal;

    fn item(self) -> Result<impl ItemVisitor<'de>, Refusal> {
        *self.member = Member::Item(Item {
            value: Bare::Boolean(true),
            params: Vec::new(),
        });
        match self.member {
            Member::Item(item) => Ok(ItemSlot {
                item,
                refusals: self.refusals,
            }),
            Member::InnerList(..) => self.refusals.refuse("dictionary member lost"),
        }
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Refusal> {
        *self.member = Member::InnerList(Vec::new(), Vec::new());
        match self.member {
            Member::InnerList(items, params) => Ok(InnerListSlot {
                items,
                params,
                refusals: self.refusals,
            }),
            Member::Item(_) => self.refusals.refuse("dictionary member lost"),
        }
    }
}

/// One item being parsed (a member, or an item of an inner list).
struct ItemSlot<'a> {
    item: &'a mut Item,
    refusals: &'a mut Refusals,
}

#[diversify]
impl<'de> ItemVisitor<'de> for ItemSlot<'_> {
    type Out = ();
    type Error = Refusal;

    fn bare_item(
        self,
        bare: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Refusal> {
        self.item.value = self.refusals.bare(bare)?;
        Ok(ParamsSlot {
            params: &mut self.item.params,
            refusals: self.refusals,
        })
    }
}

/// An inner list being parsed.
struct InnerListSlot<'a> {
    items: &'a mut Vec<Item>,
    params: &'a mut Params,
    refusals: &'a mut Refusals,
}

#[diversify]
impl<'de> InnerListVisitor<'de> for InnerListSlot<'_> {
    type Error = Refusal;

    fn item(&mut self) -> Result<impl ItemVisitor<'de>, Refusal> {
        if self.items.len() >= MAX_ITEMS {
            return self.refusals.refuse("too many inner-list items");
        }
        self.items.push(Item {
            value: Bare::Boolean(true),
            params: Vec::new(),
        });
        match self.items.last_mut() {
            Some(item) => Ok(ItemSlot {
                item,
                refusals: &mut *self.refusals,
            }),
            None => self.refusals.refuse("inner-list item lost"),
        }
    }

    fn finish(self) -> Result<impl ParameterVisitor<'de>, Refusal> {
        Ok(ParamsSlot {
            params: self.params,
            refusals: self.refusals,
        })
    }
}

/// The parameters of an item or inner list being parsed.
struct ParamsSlot<'a> {
    params: &'a mut Params,
    refusals: &'a mut Refusals,
}

#[diversify]
impl<'de> ParameterVisitor<'de> for ParamsSlot<'_> {
    type Out = ();
    type Error = Refusal;

    fn parameter(
        &mut self,
        key: &'de KeyRef,
        value: BareItemFromInput<'de>,
    ) -> Result<(), Refusal> {
        let key = self.refusals.key(key)?;
        if self.params.iter().any(|(k, _)| *k == key) {
            return self.refusals.refuse("duplicate parameter");
        }
        if self.params.len() >= MAX_PARAMS {
            return self.refusals.refuse("too many parameters");
        }
        let value = self.refusals.bare(value)?;
        self.params.push((key, value));
        Ok(())
    }

    fn finish(self) -> Result<(), Refusal> {
        Ok(())
    }
}

/// Parses a dictionary field value (RFC 8941 §4.2.2).
#[diversify]
pub fn parse_dictionary(input: &str) -> Result<Dictionary, SfError> {
    if input.len() > MAX_FIELD {
        return Err(SfError::Refused("field too long"));
    }
    let mut builder = DictionaryBuilder::default();
    let parsed = sfv::Parser::new(input)
        .with_version(sfv::Version::Rfc8941)
        .parse_dictionary_with_visitor(&mut builder);
    match (parsed, builder.refusals.0) {
        (Ok(()), None) => Ok(builder.dict),
        (_, Some(reason)) => Err(SfError::Refused(reason)),
        (Err(e), None) => Err(SfError::Syntax(e)),
    }
}

/// `v` as `sfv` serializes it; refused if it holds what the type cannot
/// carry (a string with a control character, an integer of 16 digits).
#[diversify]
fn ref_bare(v: &Bare) -> Result<RefBareItem<'_>, SfError> {
    let refused = |_| SfError::Refused("a value a structured field cannot carry");
    Ok(match v {
        Bare::Integer(i) => RefBareItem::Integer(sfv::Integer::try_from(*i).map_err(refused)?),
        Bare::String(s) => RefBareItem::String(StringRef::from_str(s).map_err(refused)?),
        Bare::Token(t) => RefBareItem::Token(TokenRef::from_str(t).map_err(refused)?),
        Bare::Bytes(b) => RefBareItem::ByteSequence(b),
        Bare::Boolean(b) => RefBareItem::Boolean(*b),
    })
}

/// `params` as `sfv` takes them.
#[diversify]
fn ref_params(params: &[(String, Bare)]) -> Result<Vec<(&KeyRef, RefBareItem<'_>)>, SfError> {
    params
        .iter()
        .map(|(k, v)| {
            let key = KeyRef::from_str(k).map_err(|_| SfError::Refused("not a key"))?;
            Ok((key, ref_bare(v)?))
        })
        .collect()
}

/// Serializes an inner list with its parameters (RFC 8941 §4.1.1.1).
#[diversify]
pub fn serialize_inner_list(items: &[Item], params: &[(String, Bare)]) -> Result<String, SfError> {
    let mut out = String::new();
    let mut list = sfv::ListSerializer::with_buffer(&mut out);
    {
        let mut inner = list.inner_list();
        for item in items {
            let _ = inner
                .bare_item(ref_bare(&item.value)?)
                .parameters(ref_params(&item.params)?);
        }
        let _ = inner.finish().parameters(ref_params(params)?);
    }
    drop(list);
    Ok(out)
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
        let back = format!("sig1={}", serialize_inner_list(items, params).unwrap());
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
        let long_key = format!("{}=1", "k".repeat(MAX_KEY + 1));
        let long_bytes = format!("a=:{}:", "A".repeat(MAX_STRING + 4));
        let many = (0..=MAX_MEMBERS)
            .map(|i| format!("k{i}=1"))
            .collect::<Vec<_>>()
            .join(", ");
        let many_items = format!("a=({})", vec!["1"; MAX_ITEMS + 1].join(" "));
        let many_params = format!(
            "a=1{}",
            (0..=MAX_PARAMS)
                .map(|i| format!(";p{i}"))
                .collect::<String>()
        );
        let huge = "a".repeat(MAX_FIELD + 1);
        for bad in [
            "A=1",
            "a=1,",
            "a=1,,b=2",
            "a=1 b=2",
            "a=1, a=2",
            "a=1.5",
            "a=(1.5)",
            "a=1;p=0.5",
            "a=1234567890123456",
            "a=\"unterminated",
            "a=\"bad\\n\"",
            "a=:AQI=x:",
            "a=?2",
            "a=(1 2",
            "a=(1;p;p)",
            "a=\"\u{e9}\"",
            "a=-",
            "a=@1618884473",
            "a=%\"display\"",
            long.as_str(),
            long_key.as_str(),
            long_bytes.as_str(),
            many.as_str(),
            many_items.as_str(),
            many_params.as_str(),
            huge.as_str(),
        ] {
            let r = parse_dictionary(bad);
            assert!(r.is_err(), "accepted {bad:?}: {r:?}");
        }
        // The empty field is an empty dictionary.
        assert!(parse_dictionary("").unwrap().is_empty());
        // What the caps allow still parses.
        let most = (0..MAX_MEMBERS)
            .map(|i| format!("k{i}=1"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(parse_dictionary(&most).unwrap().len(), MAX_MEMBERS);
    }

    #[test]
    fn refusals_say_why_and_syntax_errors_keep_their_cause() {
        assert_eq!(
            parse_dictionary("a=1, a=2").unwrap_err().reason(),
            "duplicate dictionary key"
        );
        assert_eq!(
            parse_dictionary("a=1.5").unwrap_err().reason(),
            "decimals are not accepted"
        );
        let e = parse_dictionary("a=(1 2").unwrap_err();
        assert!(matches!(e, SfError::Syntax(_)), "{e:?}");
        assert_eq!(e.reason(), "not a structured field");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn byte_sequences_follow_rfc_8941_on_padding() {
        // RFC 8941 §4.2.7: parsers SHOULD NOT fail when "=" padding is
        // absent; the serializer always pads.
        let d = parse_dictionary("a=:AQ:").unwrap();
        assert_eq!(
            d[0].1,
            Member::Item(Item {
                value: Bare::Bytes(vec![1]),
                params: Vec::new()
            })
        );
        let item = Item {
            value: Bare::Bytes(vec![1]),
            params: Vec::new(),
        };
        assert_eq!(serialize_inner_list(&[item], &[]).unwrap(), "(:AQ==:)");
    }

    #[test]
    fn serializing_refuses_what_a_field_cannot_carry() {
        let item = |value| Item {
            value,
            params: Vec::new(),
        };
        for bad in [
            Bare::String("new\nline".into()),
            Bare::Token("0starts-with-a-digit".into()),
            Bare::Integer(10_i64.pow(15)),
        ] {
            assert!(
                serialize_inner_list(&[item(bad.clone())], &[]).is_err(),
                "{bad:?}"
            );
        }
        let params = [("Upper".to_owned(), Bare::Boolean(true))];
        assert!(serialize_inner_list(&[], &params).is_err());
        let params = [("flag".to_owned(), Bare::Boolean(true))];
        assert_eq!(serialize_inner_list(&[], &params).unwrap(), "();flag");
    }
}
