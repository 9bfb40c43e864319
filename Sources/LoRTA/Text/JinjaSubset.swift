/// A parser for the small part of Jinja that ChatML chat templates use: text, `{{ … }}` outputs
/// concatenating string literals and `message['role']`/`message.content` (with `+` or `~`),
/// `{% for message in messages %}`, `{% if … %}` on `add_generation_prompt`, `loop.first`,
/// `loop.index0 == 0`, `loop.index == 1`, `not`, `and`, and role comparisons of the current or
/// first message, and `{# comments #}`. Whitespace follows the environment transformers
/// uses: `trim_blocks` and `lstrip_blocks` on, `-` markers strip, `+` markers keep, a single
/// trailing newline of the source is dropped, and CR/CRLF line ends become LF.
///
/// It only builds a tree (``Node``); ``ChatTemplate`` decides whether the tree is a family it
/// renders. Any other construct is a ``Failure`` that names it.
enum JinjaSubset {
    struct Failure: Error, Equatable {
        let reason: String
    }

    /// A piece of an output expression.
    enum Atom: Equatable, CustomStringConvertible {
        case literal(String)
        /// The loop message's role.
        case role
        /// The loop message's content.
        case content

        var description: String {
            switch self {
            case .literal(let s): return s.debugDescription
            case .role: return "message.role"
            case .content: return "message.content"
            }
        }
    }

    enum Subject: Equatable {
        case firstMessage
        case currentMessage
    }

    indirect enum Condition: Equatable, CustomStringConvertible {
        case addGenerationPrompt
        case firstIteration
        case roleIs(Subject, String, negated: Bool)
        case and([Condition])
        case not(Condition)

        var description: String {
            switch self {
            case .addGenerationPrompt: return "add_generation_prompt"
            case .firstIteration: return "loop.first"
            case .roleIs(let subject, let role, let negated):
                return "\(subject == .firstMessage ? "messages[0]" : "message").role \(negated ? "!=" : "==") \(role.debugDescription)"
            case .and(let parts): return parts.map(\.description).joined(separator: " and ")
            case .not(let c): return "not (\(c))"
            }
        }
    }

    indirect enum Node: Equatable {
        case output([Atom])
        case forLoop([Node])
        case ifBlock(Condition, [Node])
    }

    /// Merges consecutive outputs (and adjacent literals) and drops empty ones.
    static func mergeOutputs(_ nodes: [Node]) -> [Node] {
        var out: [Node] = []
        for node in nodes {
            guard case .output(let atoms) = node else { out.append(node); continue }
            var merged: [Atom] = []
            if case .output(let previous)? = out.last {
                merged = previous
                out.removeLast()
            }
            for atom in atoms {
                if case .literal(let s) = atom {
                    if s.isEmpty { continue }
                    if case .literal(let p)? = merged.last {
                        merged[merged.count - 1] = .literal(p + s)
                        continue
                    }
                }
                merged.append(atom)
            }
            if !merged.isEmpty { out.append(.output(merged)) }
        }
        return out
    }

    /// `s` written inside a single-quoted Jinja string literal.
    static func escapeSingleQuoted(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    // MARK: Lexing

    private enum TagKind { case output, statement, comment }

    private enum Piece {
        case text([Unicode.Scalar])
        /// `trimmedNewlineAfter` is set by the whitespace pass when trim_blocks removed the
        /// newline that followed the tag.
        case tag(TagKind, body: [Unicode.Scalar], stripBefore: Bool, stripAfter: Bool, keepBefore: Bool, keepAfter: Bool)
    }

    private static func isSpace(_ c: Unicode.Scalar) -> Bool {
        c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0B}" || c == "\u{0C}"
    }

    private static func lex(_ source: String) throws(Failure) -> [Piece] {
        // Normalize line ends (Jinja's newline_sequence "\n").
        var s: [Unicode.Scalar] = []
        var it = Array(source.unicodeScalars)
        var k = 0
        while k < it.count {
            if it[k] == "\r" {
                s.append("\n")
                if k + 1 < it.count, it[k + 1] == "\n" { k += 1 }
            } else {
                s.append(it[k])
            }
            k += 1
        }
        it = []
        // keep_trailing_newline is off: one final newline is dropped.
        if s.last == "\n" { s.removeLast() }

        var pieces: [Piece] = []
        var text: [Unicode.Scalar] = []
        var i = 0
        while i < s.count {
            guard s[i] == "{", i + 1 < s.count, let kind = tagKind(s[i + 1]) else {
                text.append(s[i])
                i += 1
                continue
            }
            if !text.isEmpty { pieces.append(.text(text)); text = [] }
            var j = i + 2
            var stripBefore = false, keepBefore = false
            if j < s.count, s[j] == "-" { stripBefore = true; j += 1 } else if j < s.count, s[j] == "+" { keepBefore = true; j += 1 }
            let close: Unicode.Scalar = kind == .output ? "}" : (kind == .statement ? "%" : "#")
            var body: [Unicode.Scalar] = []
            var quote: Unicode.Scalar? = nil
            var closed = false
            while j < s.count {
                let c = s[j]
                if let q = quote {
                    body.append(c)
                    if c == "\\", j + 1 < s.count { body.append(s[j + 1]); j += 2; continue }
                    if c == q { quote = nil }
                    j += 1
                    continue
                }
                if kind != .comment, c == "'" || c == "\"" { quote = c; body.append(c); j += 1; continue }
                // End marker: [-+]? close "}"
                var m = j
                var stripAfter = false, keepAfter = false
                if s[m] == "-" || s[m] == "+", m + 1 < s.count, s[m + 1] == close {
                    stripAfter = s[m] == "-"
                    keepAfter = s[m] == "+"
                    m += 1
                }
                if s[m] == close, m + 1 < s.count, s[m + 1] == "}" {
                    pieces.append(.tag(kind, body: body, stripBefore: stripBefore, stripAfter: stripAfter,
                                       keepBefore: keepBefore, keepAfter: keepAfter))
                    j = m + 2
                    closed = true
                    break
                }
                body.append(c)
                j += 1
            }
            guard closed else { throw Failure(reason: "unterminated tag at scalar \(i)") }
            i = j
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        return applyWhitespaceRules(pieces)
    }

    private static func tagKind(_ c: Unicode.Scalar) -> TagKind? {
        switch c {
        case "{": return .output
        case "%": return .statement
        case "#": return .comment
        default: return nil
        }
    }

    /// trim_blocks, lstrip_blocks and the `-` markers; comments are removed afterwards.
    private static func applyWhitespaceRules(_ pieces: [Piece]) -> [Piece] {
        var out = pieces
        var lineStarting = true  // Jinja's line_starting: at the start or right after a newline
        for index in out.indices {
            guard case .text(var text) = out[index] else {
                if case .tag(let kind, _, _, _, _, _) = out[index], kind == .output { lineStarting = false }
                continue
            }
            var startsLine = lineStarting
            if index > 0, case .tag(let kind, _, _, let stripAfter, _, let keepAfter) = out[index - 1] {
                if stripAfter {
                    while let f = text.first, isSpace(f) { text.removeFirst() }
                } else if kind != .output, !keepAfter, text.first == "\n" {
                    text.removeFirst()  // trim_blocks
                    startsLine = true
                } else {
                    startsLine = false
                }
            }
            if index + 1 < out.count, case .tag(let kind, _, let stripBefore, _, let keepBefore, _) = out[index + 1] {
                if stripBefore {
                    while let l = text.last, isSpace(l) { text.removeLast() }
                } else if kind != .output, !keepBefore {
                    // lstrip_blocks: spaces and tabs between the start of the line and the tag.
                    let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                    if (lineStart > 0 || startsLine) && text[lineStart...].allSatisfy({ $0 == " " || $0 == "\t" }) {
                        text.removeSubrange(lineStart...)
                    }
                }
            }
            lineStarting = text.last == "\n" || (text.isEmpty && startsLine)
            out[index] = .text(text)
        }
        return out.filter { piece in
            if case .tag(.comment, _, _, _, _, _) = piece { return false }
            return true
        }
    }

    // MARK: Parsing

    /// Parses `source` into a tree. O(length).
    static func parse(_ source: String) throws(Failure) -> [Node] {
        let pieces = try lex(source)
        var index = 0
        let nodes = try parseBlock(pieces, &index, loopVariable: nil, until: [], depth: 0)
        guard index == pieces.count else { throw Failure(reason: "unexpected block end") }
        return nodes
    }

    /// Deepest nesting of blocks, and of parentheses and `not`s in an expression.
    static let maximumDepth = 32

    private static func parseBlock(_ pieces: [Piece], _ index: inout Int, loopVariable: String?,
                                   until terminators: Set<String>, depth: Int) throws(Failure) -> [Node] {
        guard depth <= maximumDepth else { throw Failure(reason: "blocks nested deeper than \(maximumDepth) levels") }
        var nodes: [Node] = []
        while index < pieces.count {
            let piece = pieces[index]
            switch piece {
            case .text(let text):
                index += 1
                if !text.isEmpty { nodes.append(.output([.literal(String(String.UnicodeScalarView(text)))])) }
            case .tag(.output, let body, _, _, _, _):
                index += 1
                let tokens = try lexTag(body, "{{", "}}")
                var p = ExpressionParser(tokens: tokens, loopVariable: loopVariable)
                let atoms = try p.concatenation()
                guard p.atEnd else { throw Failure(reason: "unsupported expression {{\(String(String.UnicodeScalarView(body)))}}") }
                nodes.append(.output(atoms))
            case .tag(.statement, let body, _, _, _, _):
                let tokens = try lexTag(body, "{%", "%}")
                let statement = String(String.UnicodeScalarView(body)).trimmingSpaces
                guard case .identifier(let keyword)? = tokens.first else {
                    throw Failure(reason: "unsupported statement {%\(statement)%}")
                }
                if terminators.contains(keyword) {
                    guard tokens.count == 1 else { throw Failure(reason: "unsupported statement {%\(statement)%}") }
                    return nodes
                }
                index += 1
                switch keyword {
                case "for":
                    guard tokens.count == 4, case .identifier(let variable) = tokens[1], tokens[2] == .identifier("in"),
                          tokens[3] == .identifier("messages") else {
                        throw Failure(reason: "unsupported loop {%\(statement)%} (only `for message in messages`)")
                    }
                    guard loopVariable == nil else { throw Failure(reason: "nested loops") }
                    let body = try parseBlock(pieces, &index, loopVariable: variable, until: ["endfor"], depth: depth + 1)
                    guard index < pieces.count else { throw Failure(reason: "missing {% endfor %}") }
                    index += 1
                    nodes.append(.forLoop(body))
                case "if":
                    var p = ExpressionParser(tokens: Array(tokens.dropFirst()), loopVariable: loopVariable)
                    let condition = try p.condition()
                    guard p.atEnd else { throw Failure(reason: "unsupported condition {%\(statement)%}") }
                    let body = try parseBlock(pieces, &index, loopVariable: loopVariable, until: ["endif", "else", "elif"],
                                              depth: depth + 1)
                    guard index < pieces.count else { throw Failure(reason: "missing {% endif %}") }
                    if case .tag(_, let b, _, _, _, _) = pieces[index], String(String.UnicodeScalarView(b)).trimmingSpaces != "endif" {
                        throw Failure(reason: "unsupported {%\(String(String.UnicodeScalarView(b)).trimmingSpaces)%} branch")
                    }
                    index += 1
                    nodes.append(.ifBlock(condition, body))
                default:
                    throw Failure(reason: "unsupported statement {%\(statement)%}")
                }
            case .tag(.comment, _, _, _, _, _):
                index += 1
            }
        }
        if !terminators.isEmpty { throw Failure(reason: "missing {% \(terminators.sorted().first ?? "end") %}") }
        return nodes
    }

    /// The tokens of a tag's body; a failure names the tag.
    private static func lexTag(_ body: [Unicode.Scalar], _ open: String, _ close: String) throws(Failure) -> [Token] {
        var lexer = ExpressionLexer(body)
        do throws(Failure) {
            return try lexer.tokens()
        } catch {
            let text = String(String.UnicodeScalarView(body)).trimmingSpaces
            throw Failure(reason: "unsupported \(open == "{{" ? "expression" : "statement") \(open) \(text) \(close) (\(error.reason))")
        }
    }

    // MARK: Expressions

    enum Token: Equatable {
        case identifier(String)
        case string(String)
        case integer(Int)
        case symbol(String)
    }

    private struct ExpressionLexer {
        let s: [Unicode.Scalar]
        var i = 0

        init(_ s: [Unicode.Scalar]) { self.s = s }

        mutating func tokens() throws(Failure) -> [Token] {
            var out: [Token] = []
            while i < s.count {
                let c = s[i]
                if JinjaSubset.isSpace(c) { i += 1; continue }
                if c == "'" || c == "\"" { out.append(.string(try string(quote: c))); continue }
                if c == "_" || c.properties.isAlphabetic {
                    var name = ""
                    while i < s.count, s[i] == "_" || s[i].properties.isAlphabetic || ("0"..."9").contains(s[i]) {
                        name.unicodeScalars.append(s[i]); i += 1
                    }
                    out.append(.identifier(name))
                    continue
                }
                if ("0"..."9").contains(c) {
                    var v = 0
                    while i < s.count, ("0"..."9").contains(s[i]) {
                        v = v &* 10 &+ Int(s[i].value - 48); i += 1
                    }
                    out.append(.integer(v))
                    continue
                }
                if i + 1 < s.count, (c == "=" || c == "!"), s[i + 1] == "=" {
                    out.append(.symbol(String(c) + "=")); i += 2; continue
                }
                switch c {
                case "+", "~", "[", "]", ".", "(", ")":
                    out.append(.symbol(String(c))); i += 1
                case "|":
                    throw Failure(reason: "filters are not supported")
                default:
                    throw Failure(reason: "unsupported character \(String(c).debugDescription) in an expression")
                }
            }
            return out
        }

        /// A Python-style string literal (Jinja decodes `unicode-escape`).
        mutating func string(quote: Unicode.Scalar) throws(Failure) -> String {
            i += 1
            var out = String.UnicodeScalarView()
            while i < s.count {
                let c = s[i]
                if c == quote { i += 1; return String(out) }
                if c != "\\" { out.append(c); i += 1; continue }
                guard i + 1 < s.count else { break }
                let e = s[i + 1]
                i += 2
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "\\": out.append("\\")
                case "'": out.append("'")
                case "\"": out.append("\"")
                case "a": out.append("\u{07}")
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "v": out.append("\u{0B}")
                case "0": out.append("\0")
                case "\n": break  // line continuation
                case "x", "u", "U":
                    let digits = e == "x" ? 2 : (e == "u" ? 4 : 8)
                    guard i + digits <= s.count,
                          let v = UInt32(String(String.UnicodeScalarView(s[i..<(i + digits)])), radix: 16),
                          let scalar = Unicode.Scalar(v) else {
                        throw Failure(reason: "invalid \\\(e) escape in a string literal")
                    }
                    out.append(scalar)
                    i += digits
                default:
                    out.append("\\"); out.append(e)  // Python keeps unknown escapes
                }
            }
            throw Failure(reason: "unterminated string literal")
        }
    }

    private struct ExpressionParser {
        let tokens: [Token]
        let loopVariable: String?
        var i = 0
        var depth = 0

        init(tokens: [Token], loopVariable: String?) {
            self.tokens = tokens
            self.loopVariable = loopVariable
        }

        var atEnd: Bool { i == tokens.count }

        private var rendered: String {
            tokens.map { t -> String in
                switch t {
                case .identifier(let s), .symbol(let s): return s
                case .string(let s): return s.debugDescription
                case .integer(let v): return String(v)
                }
            }.joined(separator: " ")
        }

        private mutating func accept(_ t: Token) -> Bool {
            if i < tokens.count, tokens[i] == t { i += 1; return true }
            return false
        }

        /// atom (("+" | "~") atom)*
        mutating func concatenation() throws(Failure) -> [Atom] {
            var atoms = try atom()
            while accept(.symbol("+")) || accept(.symbol("~")) { atoms += try atom() }
            return atoms
        }

        private mutating func atom() throws(Failure) -> [Atom] {
            guard i < tokens.count else { throw Failure(reason: "incomplete expression `\(rendered)`") }
            switch tokens[i] {
            case .string(let s):
                i += 1
                return [.literal(s)]
            case .symbol("("):
                i += 1
                depth += 1
                guard depth <= JinjaSubset.maximumDepth else { throw Failure(reason: "expression nested too deeply") }
                defer { depth -= 1 }
                let inner = try concatenation()
                guard accept(.symbol(")")) else { throw Failure(reason: "unsupported expression `\(rendered)`") }
                return inner
            case .identifier:
                let (subject, field) = try reference()
                guard subject == .currentMessage else {
                    throw Failure(reason: "unsupported output of messages[0] in `\(rendered)`")
                }
                return [field == "role" ? .role : .content]
            default:
                throw Failure(reason: "unsupported expression `\(rendered)`")
            }
        }

        /// `message['role']`, `message.content`, `messages[0]['role']`, … → (subject, field).
        private mutating func reference() throws(Failure) -> (Subject, String) {
            guard case .identifier(let name)? = i < tokens.count ? tokens[i] : nil else {
                throw Failure(reason: "unsupported expression `\(rendered)`")
            }
            i += 1
            let subject: Subject
            if let v = loopVariable, name == v {
                subject = .currentMessage
            } else if name == "messages", accept(.symbol("[")), accept(.integer(0)), accept(.symbol("]")) {
                subject = .firstMessage
            } else {
                throw Failure(reason: "unsupported variable `\(name)` in `\(rendered)`")
            }
            let field: String
            if accept(.symbol(".")), case .identifier(let f)? = i < tokens.count ? tokens[i] : nil {
                i += 1
                field = f
            } else if accept(.symbol("[")), case .string(let f)? = i < tokens.count ? tokens[i] : nil {
                i += 1
                guard accept(.symbol("]")) else { throw Failure(reason: "unsupported expression `\(rendered)`") }
                field = f
            } else {
                throw Failure(reason: "unsupported expression `\(rendered)`")
            }
            guard field == "role" || field == "content" else {
                throw Failure(reason: "unsupported message field `\(field)` in `\(rendered)`")
            }
            guard i == tokens.count || [.symbol("+"), .symbol("~"), .symbol(")"), .symbol("=="), .symbol("!="),
                                        .identifier("and")].contains(tokens[i]) else {
                throw Failure(reason: "unsupported expression `\(rendered)`")
            }
            return (subject, field)
        }

        /// term ("and" term)*
        mutating func condition() throws(Failure) -> Condition {
            var parts = [try term()]
            while accept(.identifier("and")) { parts.append(try term()) }
            if tokens.contains(.identifier("or")) { throw Failure(reason: "unsupported condition `\(rendered)` (or)") }
            return parts.count == 1 ? parts[0] : .and(parts)
        }

        private mutating func term() throws(Failure) -> Condition {
            depth += 1
            defer { depth -= 1 }
            guard depth <= JinjaSubset.maximumDepth else { throw Failure(reason: "condition nested too deeply") }
            if accept(.identifier("not")) { return .not(try term()) }
            if accept(.symbol("(")) {
                let c = try condition()
                guard accept(.symbol(")")) else { throw Failure(reason: "unsupported condition `\(rendered)`") }
                return c
            }
            if accept(.identifier("add_generation_prompt")) { return .addGenerationPrompt }
            if i + 2 < tokens.count, tokens[i] == .identifier("loop"), tokens[i + 1] == .symbol(".") {
                if case .identifier(let f) = tokens[i + 2] {
                    i += 3
                    switch f {
                    case "first": return .firstIteration
                    case "index0" where accept(.symbol("==")) && accept(.integer(0)): return .firstIteration
                    case "index" where accept(.symbol("==")) && accept(.integer(1)): return .firstIteration
                    default: throw Failure(reason: "unsupported loop condition `\(rendered)`")
                    }
                }
            }
            let (subject, field) = try reference()
            guard field == "role" else { throw Failure(reason: "unsupported condition on `\(field)` in `\(rendered)`") }
            let negated: Bool
            if accept(.symbol("!=")) { negated = true } else if accept(.symbol("==")) { negated = false } else {
                throw Failure(reason: "unsupported condition `\(rendered)`")
            }
            guard case .string(let role)? = i < tokens.count ? tokens[i] : nil else {
                throw Failure(reason: "unsupported condition `\(rendered)`")
            }
            i += 1
            return .roleIs(subject, role, negated: negated)
        }
    }
}

private extension String {
    var trimmingSpaces: String {
        var scalars = Array(unicodeScalars)
        while let f = scalars.first, f == " " || f == "\t" || f == "\n" { scalars.removeFirst() }
        while let l = scalars.last, l == " " || l == "\t" || l == "\n" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
