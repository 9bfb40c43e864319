/// Greedy longest-match-first WordPiece over a fixed vocabulary.
///
/// A word is split left to right: at each position the longest vocabulary entry that matches
/// is taken, written with the continuation prefix (`##`) when it does not start the word. If
/// some position matches nothing, or the word has more than ``maxInputCharsPerWord`` Unicode
/// scalars, the whole word becomes the unknown token. This is the algorithm of BERT and of
/// Hugging Face `tokenizers`' `WordPiece` model.
///
/// Vocabulary entries are compared scalar by scalar (not with Swift's canonical-equivalence
/// `String` equality), so "é" (U+00E9) and "e" + U+0301 are different pieces, as in BERT.
public struct WordPiece: Sendable {
    /// Continuation prefix of non-initial pieces.
    public let continuationPrefix: String
    /// Longer words (in Unicode scalars) become the unknown token.
    public let maxInputCharsPerWord: Int
    /// Id of the unknown token.
    public let unknownID: Int32

    /// Pieces that may start a word (every vocabulary entry, keyed by its scalars).
    private let initial: [[Unicode.Scalar]: Int32]
    /// Pieces that continue a word: entries starting with the prefix, keyed without it.
    private let continuation: [[Unicode.Scalar]: Int32]
    /// The longest entry, in scalars (bounds the search).
    private let longestPiece: Int

    /// Builds the lookup tables. When a token occurs twice, the later line's id wins (as in
    /// `tokenizers`). O(total vocabulary length).
    public init(vocabulary: [String], unknownID: Int32, continuationPrefix: String = "##",
                maxInputCharsPerWord: Int = 100) {
        self.continuationPrefix = continuationPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.unknownID = unknownID
        let prefix = Array(continuationPrefix.unicodeScalars)
        var initial: [[Unicode.Scalar]: Int32] = [:]
        var continuation: [[Unicode.Scalar]: Int32] = [:]
        initial.reserveCapacity(vocabulary.count)
        var longest = 0
        for (id, token) in vocabulary.enumerated() {
            let scalars = Array(token.unicodeScalars)
            initial[scalars] = Int32(id)
            longest = max(longest, scalars.count)
            if !prefix.isEmpty, scalars.count > prefix.count, scalars.starts(with: prefix) {
                continuation[Array(scalars[prefix.count...])] = Int32(id)
            }
        }
        self.initial = initial
        self.continuation = continuation
        self.longestPiece = longest
    }

    /// Appends the piece ids of one word to `ids`. O(n · min(n, longest piece)) hash look-ups
    /// for a word of n scalars.
    public func appendIDs(of word: [Unicode.Scalar], to ids: inout [Int32]) {
        let n = word.count
        if n == 0 { return }
        if n > maxInputCharsPerWord {
            ids.append(unknownID)
            return
        }
        let mark = ids.count
        var start = 0
        var key: [Unicode.Scalar] = []
        key.reserveCapacity(n)
        while start < n {
            let table = start == 0 ? initial : continuation
            var end = min(n, start + longestPiece)
            var found: Int32? = nil
            while end > start {
                key.removeAll(keepingCapacity: true)
                key.append(contentsOf: word[start..<end])
                if let id = table[key] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else {
                ids.removeSubrange(mark...)
                ids.append(unknownID)
                return
            }
            ids.append(id)
            start = end
        }
    }

    /// The piece ids of one word.
    public func ids(of word: [Unicode.Scalar]) -> [Int32] {
        var ids: [Int32] = []
        appendIDs(of: word, to: &ids)
        return ids
    }
}
