//! Turns the byte pieces of generated tokens into text that is safe to
//! stream: an incomplete UTF-8 sequence waits for the next token, and text
//! that could be the start of a stop string is held back until it is known
//! not to be one (a stop string is never streamed, even partly).

#[cfg_attr(not(feature = "local-llm"), allow(dead_code))]
pub(crate) struct TextAssembler {
    pending: Vec<u8>,
    text: String,
    emitted: usize,
    stops: Vec<String>,
}

#[cfg_attr(not(feature = "local-llm"), allow(dead_code))]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Text that may be shown now (possibly empty).
    Continue(String),
    /// A stop string appeared: the last text to show; generation ends.
    Stop(String),
}

#[cfg_attr(not(feature = "local-llm"), allow(dead_code))]
impl TextAssembler {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            pending: Vec::new(),
            text: String::new(),
            emitted: 0,
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) -> Step {
        self.pending.extend_from_slice(bytes);
        self.decode_pending(false);
        if let Some(pos) = self.first_stop() {
            self.text.truncate(pos);
            let out = self.text[self.emitted.min(pos)..].to_string();
            self.emitted = self.text.len();
            return Step::Stop(out);
        }
        let safe = self.text.len() - self.held_back();
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        Step::Continue(out)
    }

    /// The rest, at the end of generation (an incomplete UTF-8 tail becomes
    /// U+FFFD).
    pub(crate) fn finish(&mut self) -> String {
        self.decode_pending(true);
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }

    /// Everything decoded so far (up to a stop string).
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    fn decode_pending(&mut self, flush: bool) {
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Valid by construction (`valid_up_to`).
                    self.text
                        .push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            self.text.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        None if flush => {
                            self.text.push('\u{FFFD}');
                            self.pending.clear();
                            return;
                        }
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn first_stop(&self) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
    }

    /// Length of the longest tail of the text that a stop string starts with.
    fn held_back(&self) -> usize {
        let tail_start = self.emitted;
        self.text[tail_start..]
            .char_indices()
            .map(|(i, _)| tail_start + i)
            .find(|&i| {
                let tail = &self.text[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .map_or(0, |i| self.text.len() - i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(stops: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut a = TextAssembler::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            match a.push(p) {
                Step::Continue(s) => out.push(s),
                Step::Stop(s) => {
                    out.push(s);
                    return (out, true, a.text().to_string());
                }
            }
        }
        out.push(a.finish());
        (out, false, a.text().to_string())
    }

    #[test]
    fn split_utf8_waits_for_its_last_byte() {
        let e = "é".as_bytes();
        let (out, stopped, text) = collect(&[], &[b"caf", &e[..1], &e[1..]]);
        assert_eq!(out, vec!["caf", "", "é", ""]);
        assert!(!stopped);
        assert_eq!(text, "café");
    }

    #[test]
    fn stop_string_is_never_streamed() {
        let (out, stopped, text) = collect(&["</s>"], &[b"Paris", b"<", b"/s", b">tail"]);
        assert!(stopped);
        assert_eq!(out.concat(), "Paris");
        assert_eq!(text, "Paris");
        assert_eq!(out[0], "Paris");
        assert_eq!(out[1], "");
    }

    #[test]
    fn a_false_start_is_released() {
        let (out, stopped, _) = collect(&["STOP"], &[b"ST", b"ay"]);
        assert!(!stopped);
        assert_eq!(out, vec!["", "STay", ""]);
    }

    #[test]
    fn incomplete_tail_at_the_end_is_replaced() {
        let (out, _, text) = collect(&[], &[b"a", &[0xE2, 0x82]]);
        assert_eq!(out.concat(), "a\u{FFFD}");
        assert_eq!(text, "a\u{FFFD}");
    }

    #[test]
    fn invalid_bytes_become_replacement_chars() {
        let (out, _, _) = collect(&[], &[&[b'x', 0xFF, b'y']]);
        assert_eq!(out.concat(), "x\u{FFFD}y");
    }
}
