//! Cheap bounds checked before a spec's text reaches a parser: its size, and how deeply it
//! nests. YAML parsers (libyaml, under `serde_norway`) spend time that grows faster than the
//! input on deeply nested text (`[[[[…]]]]`), so the nesting is measured first by a linear
//! scan that builds nothing: flow collections (`[`/`{`) outside quoted strings and comments,
//! and block collections by indentation and `- ` markers.
//!
//! The scan is an estimate that errs towards counting more: a multi-line plain scalar or a
//! quoted key may count one level too many, never fewer than the collections a parser would
//! build. A real spec nests four levels at most (the spec → `initial_commands` → a command →
//! its `queries`), so [`MAX_SPEC_DEPTH`] leaves ample room for that slack.

/// The largest spec file read: 1 MiB. A spec is a few KB; its certificates add a few KB
/// each, and initial `InstallProfile` commands carry whole `.mobileconfig` files in base64,
/// which with embedded certificates reach hundreds of KB. It equals the REST API's body
/// limit, so a file the CLI can send is one the server reads.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// The deepest nesting of lists and maps read: 32. A spec needs 4 (see the module docs);
/// 32 leaves room for any hand-written layout while keeping a parser's work linear in the
/// size of the text.
pub const MAX_SPEC_DEPTH: usize = 32;

/// How deeply a text nests, as measured by the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Nesting {
    /// The deepest nesting found.
    pub(crate) depth: usize,
    /// The 1-based line where the nesting first went past the limit asked for, if it did.
    pub(crate) over_at_line: Option<usize>,
}

/// Tracks the deepest point and where it first went over `limit`.
struct Deepest {
    limit: usize,
    depth: usize,
    over_at_line: Option<usize>,
}

impl Deepest {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            depth: 0,
            over_at_line: None,
        }
    }

    fn saw(&mut self, depth: usize, line: usize) {
        self.depth = self.depth.max(depth);
        if depth > self.limit && self.over_at_line.is_none() {
            self.over_at_line = Some(line);
        }
    }

    fn done(self) -> Nesting {
        Nesting {
            depth: self.depth,
            over_at_line: self.over_at_line,
        }
    }
}

/// The nesting of JSON text: arrays and objects, outside strings. Exact for valid JSON.
pub(crate) fn json_nesting(text: &str, limit: usize) -> Nesting {
    let mut deepest = Deepest::new(limit);
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest.saw(depth, line);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest.done()
}

/// What opened a block collection level: a key (a mapping) or a `- `/`? ` indicator (a
/// sequence entry or a complex key).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opener {
    Key,
    Dash,
}

/// The nesting of YAML text: block collections (by indentation and `- ` markers) plus the
/// flow collections open at each point.
pub(crate) fn yaml_nesting(text: &str, limit: usize) -> Nesting {
    YamlScan::new(text.as_bytes(), limit).run()
}

/// What the first byte of a token did (see [`YamlScan::token_opening`]).
enum AtStart {
    /// Nothing special: it is scanned as any byte.
    Plain,
    /// It and what it starts were skipped; whether the next byte starts a token.
    Consumed { token_start: bool },
    /// A block scalar indicator: the rest of the line was skipped.
    BlockScalar,
}

struct YamlScan<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    /// The block levels open: each one's column and what opened it.
    block: Vec<(usize, Opener)>,
    /// Flow collections open.
    flow: usize,
    /// The column of the last block level opened.
    last_col: usize,
    deepest: Deepest,
}

impl<'a> YamlScan<'a> {
    fn new(b: &'a [u8], limit: usize) -> Self {
        Self {
            b,
            i: 0,
            line: 1,
            block: Vec::new(),
            flow: 0,
            last_col: 0,
            deepest: Deepest::new(limit),
        }
    }

    fn peek(&self, at: usize) -> Option<u8> {
        self.b.get(at).copied()
    }

    /// Whether the byte at `at` ends a token: a space, a tab, a line break or the end.
    fn blank_at(&self, at: usize) -> bool {
        matches!(self.peek(at), None | Some(b' ' | b'\t' | b'\r' | b'\n'))
    }

    fn run(mut self) -> Nesting {
        // `Some(col)`: inside a block scalar whose lines are indented more than `col`.
        let mut block_scalar: Option<usize> = None;
        while self.i < self.b.len() {
            let start = self.i;
            let indent = self.b[start..].iter().take_while(|c| **c == b' ').count();
            let rest = start + indent;
            let blank = matches!(self.peek(rest), None | Some(b'\n' | b'\r' | b'\t'))
                && self.b[rest..]
                    .iter()
                    .take_while(|c| **c != b'\n')
                    .all(u8::is_ascii_whitespace);
            if let Some(parent) = block_scalar {
                if blank || indent > parent {
                    self.skip_line();
                    continue;
                }
                block_scalar = None;
            }
            if blank || self.peek(rest) == Some(b'#') {
                self.skip_line();
                continue;
            }
            let marker = &self.b[rest..];
            if indent == 0
                && (marker.starts_with(b"%")
                    || ((marker.starts_with(b"---") || marker.starts_with(b"..."))
                        && self.blank_at(rest + 3)))
            {
                // A directive or a document marker.
                self.skip_line();
                continue;
            }
            self.i = rest;
            // Block indicators at the start of the line each open a level; the token after
            // them opens one if it is a key (the scan finds its `: `).
            self.last_col = indent;
            loop {
                let col = self.i - start;
                if matches!(self.peek(self.i), Some(b'-' | b'?' | b':'))
                    && self.blank_at(self.i + 1)
                {
                    self.open_block(col, Opener::Dash);
                    self.i += 1;
                    while self.peek(self.i) == Some(b' ') {
                        self.i += 1;
                    }
                    continue;
                }
                break;
            }
            let key_col = self.i - start;
            if self.scan_tokens(Some(key_col)) {
                // Its lines are indented more than the node the line opened.
                block_scalar = Some(self.last_col);
            }
        }
        self.deepest.done()
    }

    /// Opens a block level at `col`, closing those it ends.
    fn open_block(&mut self, col: usize, opener: Opener) {
        while let Some(&(top, top_opener)) = self.block.last() {
            let nested = top == col && top_opener == Opener::Key && opener == Opener::Dash;
            if top > col || (top == col && !nested) {
                self.block.pop();
            } else {
                break;
            }
        }
        self.block.push((col, opener));
        self.last_col = col;
        self.deepest.saw(self.block.len() + self.flow, self.line);
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek(self.i) {
            self.i += 1;
            if c == b'\n' {
                self.line += 1;
                return;
            }
        }
    }

    /// Scans tokens to the end of the line, and on across lines while a flow collection is
    /// open (line breaks are white space there). Returns whether the line ends with a block
    /// scalar indicator (`|` or `>`). `key_col` is the column of the line's first token in
    /// block context: it opens a mapping level if a `: ` follows it.
    fn scan_tokens(&mut self, mut key_col: Option<usize>) -> bool {
        let mut token_start = true;
        while let Some(c) = self.peek(self.i) {
            if c == b'\n' {
                self.i += 1;
                self.line += 1;
                if self.flow == 0 {
                    return false;
                }
                token_start = true;
                continue;
            }
            let flow = self.flow > 0;
            if c == b' ' || c == b'\t' || c == b'\r' {
                self.i += 1;
                // A `#` after white space starts a comment.
                if self.peek(self.i) == Some(b'#') {
                    self.skip_to_eol();
                }
                continue;
            }
            if token_start {
                match self.token_opening(c, flow) {
                    AtStart::Plain => {}
                    AtStart::Consumed { token_start: next } => {
                        token_start = next;
                        continue;
                    }
                    AtStart::BlockScalar => return true,
                }
            }
            token_start = self.scan_byte(c, flow, token_start, &mut key_col);
        }
        false
    }

    /// `c`, the first byte of a token at `self.i`: skips a comment, a quoted scalar, an
    /// anchor or a tag, or the rest of a line that starts a block scalar (outside a flow
    /// collection).
    fn token_opening(&mut self, c: u8, flow: bool) -> AtStart {
        match c {
            b'#' => {
                self.skip_to_eol();
                AtStart::Consumed { token_start: true }
            }
            b'"' => {
                self.skip_double_quoted();
                AtStart::Consumed { token_start: false }
            }
            b'\'' => {
                self.skip_single_quoted();
                AtStart::Consumed { token_start: false }
            }
            b'&' | b'!' => {
                // An anchor or a tag before a node.
                while !self.blank_at(self.i) {
                    self.i += 1;
                }
                AtStart::Consumed { token_start: true }
            }
            b'|' | b'>' if !flow => {
                self.skip_to_eol();
                AtStart::BlockScalar
            }
            _ => AtStart::Plain,
        }
    }

    /// Scans the byte `c` at `self.i`: flow collections open and close, and a `: ` after the
    /// line's first token (`key_col`, taken once) opens a mapping level. Returns whether the
    /// next byte starts a token.
    fn scan_byte(
        &mut self,
        c: u8,
        flow: bool,
        token_start: bool,
        key_col: &mut Option<usize>,
    ) -> bool {
        match c {
            b'[' | b'{' if flow || token_start => {
                self.flow += 1;
                self.deepest.saw(self.block.len() + self.flow, self.line);
                self.i += 1;
                true
            }
            b']' | b'}' if flow => {
                self.flow -= 1;
                self.i += 1;
                false
            }
            b',' if flow => {
                self.i += 1;
                true
            }
            b':' if self.blank_at(self.i + 1)
                || (flow && matches!(self.peek(self.i + 1), Some(b',' | b']' | b'}'))) =>
            {
                if !flow && let Some(col) = key_col.take() {
                    self.open_block(col, Opener::Key);
                }
                self.i += 1;
                true
            }
            b'-' | b'?' if token_start && self.blank_at(self.i + 1) => {
                self.i += 1;
                token_start
            }
            _ => {
                self.i += 1;
                false
            }
        }
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.peek(self.i) {
            if c == b'\n' {
                return;
            }
            self.i += 1;
        }
    }

    fn skip_double_quoted(&mut self) {
        self.i += 1;
        while let Some(c) = self.peek(self.i) {
            self.i += 1;
            match c {
                b'\\' => {
                    if self.peek(self.i) == Some(b'\n') {
                        self.line += 1;
                    }
                    self.i += 1;
                }
                b'\n' => self.line += 1,
                b'"' => return,
                _ => {}
            }
        }
    }

    fn skip_single_quoted(&mut self) {
        self.i += 1;
        while let Some(c) = self.peek(self.i) {
            self.i += 1;
            match c {
                b'\n' => self.line += 1,
                b'\'' if self.peek(self.i) == Some(b'\'') => self.i += 1,
                b'\'' => return,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> usize {
        yaml_nesting(text, MAX_SPEC_DEPTH).depth
    }

    #[test]
    fn json_counts_arrays_and_objects_outside_strings() {
        assert_eq!(json_nesting("{}", 32).depth, 1);
        assert_eq!(json_nesting(r#"{"a": [1, {"b": []}]}"#, 32).depth, 4);
        assert_eq!(json_nesting(r#"{"a": "[[[[\"[[{{"}"#, 32).depth, 1);
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let n = json_nesting(&deep, 32);
        assert_eq!((n.depth, n.over_at_line), (40, Some(1)));
        let n = json_nesting("{\n\"a\":\n[[]]}", 2);
        assert_eq!((n.depth, n.over_at_line), (3, Some(3)));
    }

    #[test]
    fn yaml_block_collections_count_by_indentation() {
        assert_eq!(yaml("name: a\nprofile_name: b\n"), 1);
        assert_eq!(yaml("- a\n- b\n"), 1);
        assert_eq!(yaml("a:\n  b:\n    c: 1\n  d: 2\ne: 3\n"), 3);
        // A sequence at its key's indentation is still one level down.
        assert_eq!(yaml("a:\n- x\n- y\nb: 1\n"), 2);
        // A spec with initial commands: spec → list → command → queries.
        let spec = "name: x\ninitial_commands:\n  - request_type: DeviceInformation\n    queries:\n      - UDID\n      - OSVersion\nskip_setup_items: [Siri]\n";
        assert_eq!(yaml(spec), 4);
        assert_eq!(yaml("a:\n- - - - x\n"), 5);
    }

    #[test]
    fn yaml_flow_collections_count_outside_quotes_comments_and_scalars() {
        assert_eq!(yaml("a: [1, [2, {b: [3]}]]\n"), 5);
        assert_eq!(yaml("a: \"[[[[[[\"\nb: '[[[[''[[['\n"), 1);
        assert_eq!(yaml("a: x # [[[[[[\n"), 1);
        // Brackets inside a plain scalar are text.
        assert_eq!(yaml("department: R[&]D {lab}\n"), 1);
        // A flow collection may span lines; indentation does not count inside it.
        assert_eq!(yaml("a: [\n  [\n        [1],\n  ]\n]\nb: 2\n"), 4);
        // Block scalars are text, whatever they hold.
        assert_eq!(
            yaml("a: |\n  [[[[[[[[\n\n  - - - -\nb: >-\n    {{{{{\nc: 1\n"),
            1
        );
    }

    #[test]
    fn yaml_pathological_nesting_is_measured_in_full() {
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let n = yaml_nesting(&deep, 32);
        assert_eq!((n.depth, n.over_at_line), (40, Some(1)));
        // Unclosed brackets count too.
        assert_eq!(yaml(&"[".repeat(100_000)), 100_000);
        let stairs: String = (0..50)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let n = yaml_nesting(&stairs, 32);
        assert_eq!((n.depth, n.over_at_line), (50, Some(33)));
        let dashes = format!("{}x\n", "- ".repeat(45));
        assert_eq!(yaml(&dashes), 45);
        assert_eq!(yaml(&"{a: ".repeat(40)), 40);
    }
}
