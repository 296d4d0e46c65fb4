//! Recovering the `id` of a JSON-RPC request that cannot be decoded (too
//! large, nested too deeply, malformed further on), so the client gets an
//! error reply instead of waiting forever.
//!
//! [`IdScanner`] is a byte-at-a-time tokenizer that follows the structure of
//! one JSON text only as far as it must: it tracks strings, escapes and
//! nesting, and captures the value of the top-level `"id"` key when it is a
//! number or a string. It keeps a few hundred bytes at most, so it can run
//! over a frame that is being discarded.

use crate::jsonrpc::RequestId;

/// Longest id (raw JSON) worth capturing.
const MAX_ID_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Before the top-level value.
    Start,
    /// Inside the top-level object, a key (or `}`) comes next.
    Key,
    /// After a top-level key, `:` comes next.
    Colon,
    /// After `:`, a value comes next.
    Value,
    /// After a top-level value, `,` or `}` comes next.
    Comma,
    /// The top level is not an object (or is broken): nothing to find.
    Done,
}

/// See the module docs.
#[derive(Debug)]
pub struct IdScanner {
    expect: Expect,
    /// Nesting below the top-level object (0: directly in it).
    depth: u32,
    in_string: bool,
    escape: bool,
    /// The top-level key being read, when it may still be `id`.
    key: Vec<u8>,
    key_is_id: bool,
    /// The raw value of the `id` being read.
    value: Option<Vec<u8>>,
    found: Option<Vec<u8>>,
}

impl Default for IdScanner {
    fn default() -> Self {
        Self {
            expect: Expect::Start,
            depth: 0,
            in_string: false,
            escape: false,
            key: Vec::new(),
            key_is_id: false,
            value: None,
            found: None,
        }
    }
}

impl IdScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the text.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.expect == Expect::Done {
                return;
            }
            self.step(b);
        }
    }

    /// The last top-level `id` seen (as a JSON object keeps the last of
    /// duplicate keys), if it is an integer or a string.
    pub fn id(&self) -> Option<RequestId> {
        let raw = self.found.as_ref()?;
        serde_json::from_slice::<RequestId>(raw).ok()
    }

    fn capture(&mut self, b: u8) {
        if let Some(v) = self.value.as_mut() {
            if v.len() < MAX_ID_BYTES {
                v.push(b);
            } else {
                self.value = None;
            }
        }
    }

    fn end_value(&mut self) {
        if let Some(v) = self.value.take() {
            self.found = Some(v);
        }
        self.expect = Expect::Comma;
    }

    fn step(&mut self, b: u8) {
        if self.in_string {
            match self.expect {
                Expect::Key => {
                    if self.escape {
                        self.escape = false;
                        self.key_is_id = false;
                    } else if b == b'\\' {
                        self.escape = true;
                    } else if b == b'"' {
                        self.in_string = false;
                        self.key_is_id = self.key_is_id && self.key == b"id";
                        self.expect = Expect::Colon;
                    } else if self.key.len() < 2 {
                        self.key.push(b);
                    } else {
                        self.key_is_id = false;
                    }
                }
                _ => {
                    if self.depth == 0 {
                        self.capture(b);
                    }
                    if self.escape {
                        self.escape = false;
                    } else if b == b'\\' {
                        self.escape = true;
                    } else if b == b'"' {
                        self.in_string = false;
                        if self.depth == 0 {
                            self.end_value();
                        }
                    }
                }
            }
            return;
        }
        if b.is_ascii_whitespace() {
            if self.depth == 0 && self.expect == Expect::Value && self.value_started() {
                self.end_value();
            }
            return;
        }
        match self.expect {
            Expect::Start => {
                self.expect = if b == b'{' { Expect::Key } else { Expect::Done };
            }
            Expect::Key => match b {
                b'"' => {
                    self.in_string = true;
                    self.key.clear();
                    self.key_is_id = true;
                }
                b'}' => self.expect = Expect::Done,
                _ => self.expect = Expect::Done,
            },
            Expect::Colon => {
                self.expect = if b == b':' {
                    self.value = self.key_is_id.then(Vec::new);
                    Expect::Value
                } else {
                    Expect::Done
                };
            }
            Expect::Value if self.depth > 0 => match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.expect = Expect::Comma;
                    }
                }
                _ => {}
            },
            Expect::Value => match b {
                b'"' => {
                    self.capture(b);
                    self.in_string = true;
                }
                b'{' | b'[' => {
                    // An object or array is no id.
                    self.value = None;
                    self.depth = 1;
                }
                b',' | b'}' => {
                    // The end of a number or literal.
                    self.end_value();
                    self.step(b);
                }
                _ => self.capture(b),
            },
            Expect::Comma => match b {
                b',' => self.expect = Expect::Key,
                _ => self.expect = Expect::Done,
            },
            Expect::Done => {}
        }
    }

    /// Whether a number or literal value has begun (whitespace ends it).
    fn value_started(&self) -> bool {
        self.value.as_ref().is_some_and(|v| !v.is_empty())
    }
}

/// The top-level `id` of `text`, if one can be found.
pub fn recover_id(text: &[u8]) -> Option<RequestId> {
    let mut s = IdScanner::new();
    s.feed(text);
    s.id()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Option<RequestId> {
        recover_id(text.as_bytes())
    }

    #[test]
    fn finds_top_level_ids_anywhere() {
        assert_eq!(id(r#"{"id": 7, "method": "x"}"#), Some(RequestId::Int(7)));
        assert_eq!(
            id(r#"{"method": "x", "params": {"id": 1, "a": [1, {"id": 2}]}, "id": "abc"}"#),
            Some(RequestId::Str("abc".into()))
        );
        assert_eq!(
            id(r#"{"params":"a \" quote, \"id\": 3","id":4}"#),
            Some(RequestId::Int(4))
        );
        assert_eq!(
            id(r#"{"id":"with \"escape\"","x":1}"#),
            Some(RequestId::Str("with \"escape\"".into()))
        );
        // Broken after the id: still found.
        assert_eq!(id(r#"{"id": 12, "params": {"#), Some(RequestId::Int(12)));
        assert_eq!(id(r#"{"id":5}"#), Some(RequestId::Int(5)));
    }

    #[test]
    fn finds_nothing_where_there_is_no_id() {
        assert_eq!(id(r#"[{"id": 903}]"#), None, "batches are not requests");
        assert_eq!(id(r#"{"params": {"id": 1}}"#), None);
        assert_eq!(id(r#"{"id": {"x": 1}}"#), None);
        assert_eq!(id(r#"{"iddd": 1}"#), None);
        assert_eq!(
            id(r#"{"i\u0064": 1}"#),
            None,
            "an escaped key is not matched"
        );
        assert_eq!(id("{this is not json"), None);
        assert_eq!(id(r#"{"id": 1.5}"#), None);
    }

    #[test]
    fn works_a_byte_at_a_time() {
        let text = br#"{"method":"thread/start","params":{"deep":[[[["x"]]]]},"id":99}"#;
        let mut s = IdScanner::new();
        for b in text {
            s.feed(std::slice::from_ref(b));
        }
        assert_eq!(s.id(), Some(RequestId::Int(99)));
    }
}
