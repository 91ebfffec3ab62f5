//! Filter expressions: which items a list may hold, in a small language parsed once per request
//! and evaluated against each candidate's catalogue entry (never a scan of the catalogue).
//!
//! ```text
//! expression := term ("OR" term)*
//! term       := factor ("AND" factor)*
//! factor     := "NOT" factor | "(" expression ")" | "@" name | field operator operand
//! operator   := "=" | "!=" | "<" | "<=" | ">" | ">=" | "HAS" | "IN"
//! operand    := "string" | number | true | false | $region | $device | $maturity
//!             | "[" operand ("," operand)* "]"
//! ```
//!
//! Keywords are case-insensitive; strings are compared without regard to ASCII case. The fields
//! are the built-in `item_id`, `title`, `year`, `genres`, `tags` and the declared properties.
//! `HAS` asks whether a list holds a value; `IN` whether a value (or any of a list's values) is
//! one of a bracketed list; `=` and `!=` compare a single value, the order operators a number.
//! `$region`, `$device` and `$maturity` are the request's parameters of those names. `@name` is a
//! saved filter. An item without the field (not catalogued, or without that property) fails
//! every comparison on it (and so passes its `NOT`). A mistake is reported with its position,
//! counted in characters from 1.

use std::collections::BTreeMap;
use std::sync::Arc;

use marquee_schemas::{FieldError, Item, PropertySchema, PropertyType, PropertyValue};

/// The request parameters a filter may name with `$`.
pub const REQUEST_PROPERTIES: [&str; 3] = ["region", "device", "maturity"];
/// Longest expression, in bytes.
pub const MAX_FILTER_BYTES: usize = 2048;
/// Deepest nesting of `NOT` and parentheses.
const MAX_DEPTH: usize = 32;

/// A parsed filter expression. Cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    node: Arc<Node>,
    /// The text and the request's values it was parsed with: what its matches are cached by.
    key: Arc<str>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Compare(Field, Op, Value),
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    ItemId,
    Title,
    Year,
    Genres,
    Tags,
    Property(String, PropertyType),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
    In,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Number(f64),
    Bool(bool),
    List(Vec<Value>),
}

/// What a filter is parsed with: the declared properties, the saved filters, the request's
/// parameters.
pub struct Context<'a> {
    pub schema: &'a PropertySchema,
    /// Saved filter name → its expression (a saved filter names no other).
    pub saved: &'a BTreeMap<String, String>,
    /// `region`, `device`, `maturity` → the request's value.
    pub request: &'a BTreeMap<String, String>,
}

impl Filter {
    /// Parses `text`; `field` names the parameter in errors (`filter`). A saved filter's own
    /// expression is parsed with the same schema and request.
    pub fn parse(text: &str, field: &str, context: &Context<'_>) -> Result<Filter, FieldError> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(FieldError::new(
                field,
                format!("must be at most {MAX_FILTER_BYTES} bytes"),
            ));
        }
        let tokens = lex(text).map_err(|(at, message)| position_error(field, at, message))?;
        let mut parser = Parser {
            tokens,
            next: 0,
            context,
            depth: 0,
            expanding: false,
            end: text.chars().count() + 1,
        };
        let node = parser
            .expression()
            .and_then(|node| match parser.peek() {
                None => Ok(node),
                Some((at, token)) => Err((*at, format!("unexpected {}", token.describe()))),
            })
            .map_err(|(at, message)| position_error(field, at, message))?;
        let mut key = text.to_owned();
        for (name, value) in context.request {
            key.push('\0');
            key.push_str(name);
            key.push('=');
            key.push_str(value);
        }
        Ok(Filter {
            node: Arc::new(node),
            key: key.into(),
        })
    }

    /// The text and request values it was parsed with.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the item whose catalogue entry is `entry` (`None`: not catalogued) and whose id
    /// is `item_id` passes.
    pub fn accepts(&self, item_id: &str, entry: Option<&Item>) -> bool {
        evaluate(&self.node, item_id, entry)
    }
}

fn position_error(field: &str, at: usize, message: String) -> FieldError {
    FieldError::new(field, format!("at character {at}: {message}"))
}

fn evaluate(node: &Node, item_id: &str, entry: Option<&Item>) -> bool {
    match node {
        Node::And(nodes) => nodes.iter().all(|node| evaluate(node, item_id, entry)),
        Node::Or(nodes) => nodes.iter().any(|node| evaluate(node, item_id, entry)),
        Node::Not(node) => !evaluate(node, item_id, entry),
        Node::Compare(field, op, value) => compare(field, *op, value, item_id, entry),
    }
}

/// A field's value on one item, borrowed.
enum Actual<'a> {
    Text(&'a str),
    Number(f64),
    Bool(bool),
    List(&'a [String]),
}

fn actual<'a>(field: &Field, item_id: &'a str, entry: Option<&'a Item>) -> Option<Actual<'a>> {
    match field {
        Field::ItemId => Some(Actual::Text(item_id)),
        Field::Title => entry?.title.as_deref().map(Actual::Text),
        Field::Year => entry?.year.map(|year| Actual::Number(f64::from(year))),
        Field::Genres => entry.map(|entry| Actual::List(&entry.genres)),
        Field::Tags => entry.map(|entry| Actual::List(&entry.tags)),
        Field::Property(name, _) => match entry?.properties.get(name)? {
            PropertyValue::Text(text) => Some(Actual::Text(text)),
            PropertyValue::Number(number) => Some(Actual::Number(*number)),
            PropertyValue::Bool(flag) => Some(Actual::Bool(*flag)),
            PropertyValue::List(list) => Some(Actual::List(list)),
        },
    }
}

fn equal(actual: &Actual<'_>, value: &Value) -> bool {
    match (actual, value) {
        (Actual::Text(text), Value::Text(other)) => text.eq_ignore_ascii_case(other),
        (Actual::Number(number), Value::Number(other)) => number == other,
        (Actual::Bool(flag), Value::Bool(other)) => flag == other,
        _ => false,
    }
}

fn list_has(list: &[String], value: &Value) -> bool {
    matches!(value, Value::Text(other) if list.iter().any(|entry| entry.eq_ignore_ascii_case(other)))
}

fn compare(field: &Field, op: Op, value: &Value, item_id: &str, entry: Option<&Item>) -> bool {
    let Some(actual) = actual(field, item_id, entry) else {
        return false;
    };
    match (op, &actual) {
        (Op::Has, Actual::List(list)) => list_has(list, value),
        (Op::In, Actual::List(list)) => match value {
            Value::List(values) => values.iter().any(|value| list_has(list, value)),
            _ => false,
        },
        (Op::In, _) => match value {
            Value::List(values) => values.iter().any(|value| equal(&actual, value)),
            _ => false,
        },
        (Op::Eq, _) => equal(&actual, value),
        (Op::Ne, _) => !equal(&actual, value),
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, Actual::Number(number)) => {
            let Value::Number(other) = value else {
                return false;
            };
            match op {
                Op::Lt => number < other,
                Op::Le => number <= other,
                Op::Gt => number > other,
                _ => number >= other,
            }
        }
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Param(String),
    Saved(String),
    Op(Op),
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(word) => format!("{word:?}"),
            Token::Text(text) => format!("the string {text:?}"),
            Token::Number(number) => format!("the number {number}"),
            Token::Param(name) => format!("${name}"),
            Token::Saved(name) => format!("@{name}"),
            Token::Op(op) => format!("{:?}", op_text(*op)),
            Token::Open => "\"(\"".into(),
            Token::Close => "\")\"".into(),
            Token::OpenList => "\"[\"".into(),
            Token::CloseList => "\"]\"".into(),
            Token::Comma => "\",\"".into(),
        }
    }

    fn keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Has => "HAS",
        Op::In => "IN",
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

/// The tokens of `text` with their positions (characters from 1).
fn lex(text: &str) -> Result<Vec<(usize, Token)>, (usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (token, length) = match c {
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '[' => (Token::OpenList, 1),
            ']' => (Token::CloseList, 1),
            ',' => (Token::Comma, 1),
            '=' => (Token::Op(Op::Eq), 1),
            '!' if chars.get(i + 1) == Some(&'=') => (Token::Op(Op::Ne), 2),
            '<' if chars.get(i + 1) == Some(&'=') => (Token::Op(Op::Le), 2),
            '>' if chars.get(i + 1) == Some(&'=') => (Token::Op(Op::Ge), 2),
            '<' => (Token::Op(Op::Lt), 1),
            '>' => (Token::Op(Op::Gt), 1),
            '"' => {
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err((at, "a string is not closed with \"".into())),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(j + 1), Some('"' | '\\')) => {
                            value.push(chars[j + 1]);
                            j += 2;
                        }
                        Some(&c) => {
                            value.push(c);
                            j += 1;
                        }
                    }
                }
                (Token::Text(value), j + 1 - i)
            }
            '$' | '@' => {
                let length = chars[i + 1..].iter().take_while(|c| is_word(**c)).count();
                if length == 0 {
                    return Err((at, format!("expected a name after {c:?}")));
                }
                let name: String = chars[i + 1..i + 1 + length].iter().collect();
                let token = if c == '$' {
                    Token::Param(name)
                } else {
                    Token::Saved(name)
                };
                (token, length + 1)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let length = 1 + chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || **c == '.')
                    .count();
                let literal: String = chars[i..i + length].iter().collect();
                let number: f64 = literal
                    .parse()
                    .map_err(|_| (at, format!("{literal:?} is not a number")))?;
                (Token::Number(number), length)
            }
            c if is_word(c) => {
                let length = chars[i..].iter().take_while(|c| is_word(**c)).count();
                let word: String = chars[i..i + length].iter().collect();
                let token = if word.eq_ignore_ascii_case("HAS") {
                    Token::Op(Op::Has)
                } else if word.eq_ignore_ascii_case("IN") {
                    Token::Op(Op::In)
                } else {
                    Token::Word(word)
                };
                (token, length)
            }
            other => return Err((at, format!("unexpected character {other:?}"))),
        };
        tokens.push((at, token));
        i += length;
    }
    Ok(tokens)
}

type Parsed<T> = Result<T, (usize, String)>;

struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    next: usize,
    context: &'a Context<'a>,
    depth: usize,
    /// Inside a saved filter's expression, where `@name` is refused.
    expanding: bool,
    /// The position after the last character, for "found the end".
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&(usize, Token)> {
        self.tokens.get(self.next)
    }

    fn take(&mut self, expected: &str) -> Parsed<(usize, Token)> {
        match self.tokens.get(self.next) {
            Some(token) => {
                self.next += 1;
                Ok(token.clone())
            }
            None => Err((self.end, format!("expected {expected}, found the end"))),
        }
    }

    fn keyword_next(&self, keyword: &str) -> bool {
        self.peek().is_some_and(|(_, token)| token.keyword(keyword))
    }

    fn expression(&mut self) -> Parsed<Node> {
        let mut terms = vec![self.term()?];
        while self.keyword_next("OR") {
            self.next += 1;
            terms.push(self.term()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Node::Or(terms)
        })
    }

    fn term(&mut self) -> Parsed<Node> {
        let mut factors = vec![self.factor()?];
        while self.keyword_next("AND") {
            self.next += 1;
            factors.push(self.factor()?);
        }
        Ok(if factors.len() == 1 {
            factors.remove(0)
        } else {
            Node::And(factors)
        })
    }

    fn factor(&mut self) -> Parsed<Node> {
        let (at, token) = self.take("a condition")?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((at, format!("nested deeper than {MAX_DEPTH}")));
        }
        let node = match token {
            token if token.keyword("NOT") => Node::Not(Box::new(self.factor()?)),
            Token::Open => {
                let node = self.expression()?;
                match self.take("\")\"")? {
                    (_, Token::Close) => node,
                    (at, other) => {
                        return Err((at, format!("expected \")\", found {}", other.describe())));
                    }
                }
            }
            Token::Saved(name) => self.saved(at, &name)?,
            Token::Word(word) => self.comparison(at, &word)?,
            other => {
                return Err((at, format!("expected a field, found {}", other.describe())));
            }
        };
        self.depth -= 1;
        Ok(node)
    }

    fn saved(&mut self, at: usize, name: &str) -> Parsed<Node> {
        if self.expanding {
            return Err((at, "a saved filter cannot name another".into()));
        }
        let Some(text) = self.context.saved.get(name) else {
            return Err((at, format!("no saved filter {name:?}")));
        };
        let tokens = lex(text).map_err(|(_, message)| (at, format!("@{name}: {message}")))?;
        let mut inner = Parser {
            tokens,
            next: 0,
            context: self.context,
            depth: self.depth,
            expanding: true,
            end: text.chars().count() + 1,
        };
        let node = inner
            .expression()
            .and_then(|node| match inner.peek() {
                None => Ok(node),
                Some((at, token)) => Err((*at, format!("unexpected {}", token.describe()))),
            })
            .map_err(|(inner_at, message)| {
                (
                    at,
                    format!("@{name}, at its character {inner_at}: {message}"),
                )
            })?;
        Ok(node)
    }

    fn field(&self, at: usize, word: &str) -> Parsed<Field> {
        Ok(match word.to_ascii_lowercase().as_str() {
            "item_id" => Field::ItemId,
            "title" => Field::Title,
            "year" => Field::Year,
            "genres" => Field::Genres,
            "tags" => Field::Tags,
            name => match self.context.schema.get(name) {
                Some(kind) => Field::Property(name.to_owned(), *kind),
                None => {
                    let mut known = vec!["item_id", "title", "year", "genres", "tags"];
                    known.extend(self.context.schema.keys().map(String::as_str));
                    return Err((
                        at,
                        format!(
                            "unknown field {word:?}; the fields are {}",
                            known.join(", ")
                        ),
                    ));
                }
            },
        })
    }

    fn comparison(&mut self, at: usize, word: &str) -> Parsed<Node> {
        let field = self.field(at, word)?;
        let (op_at, op) = match self.take("an operator")? {
            (op_at, Token::Op(op)) => (op_at, op),
            (op_at, other) => {
                return Err((
                    op_at,
                    format!(
                        "expected an operator (=, !=, <, <=, >, >=, HAS, IN) after {word}, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        let kind = field_type(&field);
        let (value_at, value) = self.operand(kind)?;
        check_types(&field, kind, op, &value)
            .map_err(|message| (if message.0 { op_at } else { value_at }, message.1))?;
        Ok(Node::Compare(field, op, value))
    }

    fn operand(&mut self, kind: PropertyType) -> Parsed<(usize, Value)> {
        let (at, token) = self.take("a value")?;
        let value = match token {
            Token::OpenList => {
                let mut values = Vec::new();
                loop {
                    let (_, value) = self.scalar(kind)?;
                    values.push(value);
                    match self.take("\",\" or \"]\"")? {
                        (_, Token::Comma) => {}
                        (_, Token::CloseList) => break,
                        (at, other) => {
                            return Err((
                                at,
                                format!("expected \",\" or \"]\", found {}", other.describe()),
                            ));
                        }
                    }
                }
                Value::List(values)
            }
            _ => {
                self.next -= 1;
                return self.scalar(kind);
            }
        };
        Ok((at, value))
    }

    /// One value; a `$parameter` is read as `kind` when the field is a number.
    fn scalar(&mut self, kind: PropertyType) -> Parsed<(usize, Value)> {
        let (at, token) = self.take("a value")?;
        let value = match token {
            Token::Text(text) => Value::Text(text),
            Token::Number(number) => Value::Number(number),
            token if token.keyword("true") => Value::Bool(true),
            token if token.keyword("false") => Value::Bool(false),
            Token::Param(name) => {
                if !REQUEST_PROPERTIES.contains(&name.as_str()) {
                    return Err((
                        at,
                        format!(
                            "unknown parameter ${name}; the request's are ${}",
                            REQUEST_PROPERTIES.join(", $")
                        ),
                    ));
                }
                let Some(text) = self.context.request.get(&name) else {
                    return Err((at, format!("${name} needs the request's {name} parameter")));
                };
                match (kind, text.parse::<f64>()) {
                    (PropertyType::Number, Ok(number)) => Value::Number(number),
                    (PropertyType::Number, Err(_)) => {
                        return Err((at, format!("${name} is {text:?}, not a number")));
                    }
                    _ => Value::Text(text.clone()),
                }
            }
            other => {
                return Err((at, format!("expected a value, found {}", other.describe())));
            }
        };
        Ok((at, value))
    }
}

fn field_type(field: &Field) -> PropertyType {
    match field {
        Field::ItemId | Field::Title => PropertyType::String,
        Field::Year => PropertyType::Number,
        Field::Genres | Field::Tags => PropertyType::List,
        Field::Property(_, kind) => *kind,
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Text(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::List(_) => "a list",
    }
}

/// Whether `op` between a field of `kind` and `value` means something; the error says whether
/// the operator (`true`) or the value is at fault.
fn check_types(
    field: &Field,
    kind: PropertyType,
    op: Op,
    value: &Value,
) -> Result<(), (bool, String)> {
    let name = match field {
        Field::Property(name, _) => name.as_str(),
        Field::ItemId => "item_id",
        Field::Title => "title",
        Field::Year => "year",
        Field::Genres => "genres",
        Field::Tags => "tags",
    };
    let element = match kind {
        PropertyType::List | PropertyType::String => "a string",
        PropertyType::Number => "a number",
        PropertyType::Boolean => "a boolean",
    };
    let scalar_fits = |value: &Value| value_type(value) == element;
    let fits = |value: &Value| {
        if scalar_fits(value) {
            Ok(())
        } else {
            Err((
                false,
                format!(
                    "{name} {} needs {element}, found {}",
                    op_text(op),
                    value_type(value)
                ),
            ))
        }
    };
    match op {
        Op::Has if kind != PropertyType::List => Err((
            true,
            format!("HAS needs a list field; {name} is a {}", kind.as_str()),
        )),
        Op::Eq | Op::Ne if kind == PropertyType::List => {
            Err((true, format!("{name} is a list: use HAS or IN")))
        }
        Op::Has | Op::Eq | Op::Ne => fits(value),
        Op::In => match value {
            Value::List(values) if values.iter().all(scalar_fits) => Ok(()),
            Value::List(_) => Err((false, format!("IN on {name} needs a list of {element}s"))),
            other => Err((
                false,
                format!("IN needs a list in brackets, found {}", value_type(other)),
            )),
        },
        Op::Lt | Op::Le | Op::Gt | Op::Ge if kind != PropertyType::Number => Err((
            true,
            format!(
                "{} compares numbers; {name} is a {}",
                op_text(op),
                kind.as_str()
            ),
        )),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => fits(value),
    }
}

#[cfg(test)]
mod tests;
