//! Bounded capture of a command's output: the first and last bytes are kept,
//! the middle is counted and dropped, so a chatty command cannot grow memory.

/// Keeps at most `head_cap + tail_cap` bytes.
#[derive(Debug)]
pub struct HeadTailBuffer {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    omitted: u64,
    total: u64,
}

impl HeadTailBuffer {
    pub fn new(max_bytes: usize) -> Self {
        let head_cap = max_bytes / 2;
        Self {
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            head_cap,
            tail_cap: max_bytes - head_cap,
            omitted: 0,
            total: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < self.head_cap {
            let take = (self.head_cap - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if data.is_empty() {
            return;
        }
        self.tail.extend(data);
        if self.tail.len() > self.tail_cap {
            let excess = self.tail.len() - self.tail_cap;
            self.tail.drain(..excess);
            self.omitted += excess as u64;
        }
    }

    /// Total bytes ever pushed.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The kept output as text; a marker shows where bytes were dropped.
    pub fn to_string_lossy(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        if self.omitted > 0 {
            s.push_str(&format!(
                "\n[… {} bytes of output omitted …]\n",
                self.omitted
            ));
        }
        let (a, b) = self.tail.as_slices();
        let mut tail = Vec::with_capacity(a.len() + b.len());
        tail.extend_from_slice(a);
        tail.extend_from_slice(b);
        s.push_str(&String::from_utf8_lossy(&tail));
        s
    }
}

/// Splits a byte stream into UTF-8 text without breaking multi-byte
/// characters across chunks.
#[derive(Debug, Default)]
pub struct Utf8Chunker {
    carry: Vec<u8>,
}

impl Utf8Chunker {
    pub fn push(&mut self, data: &[u8]) -> String {
        self.carry.extend_from_slice(data);
        let valid = match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.carry.len(),
        };
        let rest = self.carry.split_off(valid);
        let out = String::from_utf8_lossy(&self.carry).into_owned();
        self.carry = rest;
        out
    }

    pub fn finish(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.carry)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail() {
        let mut b = HeadTailBuffer::new(10);
        b.push(b"0123456789abcdefghij");
        let s = b.to_string_lossy();
        assert!(s.starts_with("01234"));
        assert!(s.ends_with("fghij"));
        assert!(s.contains("10 bytes of output omitted"));
        assert_eq!(b.total_bytes(), 20);
    }

    #[test]
    fn small_output_is_verbatim() {
        let mut b = HeadTailBuffer::new(100);
        b.push(b"hello\n");
        assert_eq!(b.to_string_lossy(), "hello\n");
    }

    #[test]
    fn chunker_holds_partial_chars() {
        let mut c = Utf8Chunker::default();
        let bytes = "é".as_bytes();
        assert_eq!(c.push(&bytes[..1]), "");
        assert_eq!(c.push(&bytes[1..]), "é");
        assert_eq!(c.finish(), "");
    }
}
