import Foundation

/// The byte-pair merge step of byte-level BPE: the bytes of one pre-tokenized piece start as
/// one symbol each (the single-character tokens of ``ByteLevelAlphabet``), then the adjacent
/// pair with the lowest merge rank is merged, leftmost first on ties, until no pair has a merge.
/// This is Hugging Face `tokenizers`' `Word::merge_all` (and llama.cpp's `llm_tokenizer_bpe`).
///
/// Bytes whose single-character token is not in the vocabulary are dropped (their neighbours
/// become adjacent), or become ``unknownID`` when set (consecutive ones fused into one when
/// ``fusesUnknown``), as in `tokenizers`' `BPE::merge_word`.
struct BytePairMerger: Sendable {
    /// Token id of each byte's single-character token, or -1 when the vocabulary lacks it.
    let byteIDs: [Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let merges: PairTable
    /// Id for bytes missing from the vocabulary (nil: drop them).
    let unknownID: Int32?
    /// Fuse consecutive unknown bytes into one unknown token.
    let fusesUnknown: Bool
    /// When set, a piece that is a whole token is that token, without merging (Llama 3's
    /// `ignore_merges`): the piece's bytes → id.
    let wholePieceIDs: [ByteString: Int32]?
    /// Memoized results, shared by copies.
    let cache: Cache

    /// Longest piece (in bytes) whose ids are cached.
    static let longestCachedPiece = 256

    init(byteIDs: [Int32], merges: PairTable, unknownID: Int32?, fusesUnknown: Bool,
         wholePieceIDs: [ByteString: Int32]?, cacheCapacity: Int = 65_536) {
        self.byteIDs = byteIDs
        self.merges = merges
        self.unknownID = unknownID
        self.fusesUnknown = fusesUnknown
        self.wholePieceIDs = wholePieceIDs
        self.cache = Cache(capacity: cacheCapacity)
    }

    @inline(__always)
    static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Appends the ids of one piece (its UTF-8 bytes) to `ids`. O(n log n) for n bytes on a
    /// cache miss, one hash look-up on a hit.
    func appendIDs(of piece: [UInt8], to ids: inout [Int32]) {
        if piece.isEmpty { return }
        if let whole = wholePieceIDs, let id = whole[ByteString(piece)] {
            ids.append(id)
            return
        }
        // One or two known bytes: cheaper than the cache.
        if piece.count <= 2 {
            let a = byteIDs[Int(piece[0])]
            if piece.count == 1, a >= 0 { ids.append(a); return }
            if piece.count == 2, a >= 0 {
                let b = byteIDs[Int(piece[1])]
                if b >= 0 {
                    if let m = merges[Self.pairKey(a, b)] { ids.append(Int32(truncatingIfNeeded: m)) } else { ids.append(a); ids.append(b) }
                    return
                }
            }
        }
        let cacheable = piece.count <= Self.longestCachedPiece
        if cacheable, let hit = cache.value(for: piece) {
            ids.append(contentsOf: hit)
            return
        }
        let result = merge(piece)
        if cacheable { cache.insert(result, for: piece) }
        ids.append(contentsOf: result)
    }

    /// The merged ids of `piece` (no cache).
    func merge(_ piece: [UInt8]) -> [Int32] {
        // Initial symbols.
        var symbols: [Int32] = []
        symbols.reserveCapacity(piece.count)
        var pendingUnknown = false
        for b in piece {
            let id = byteIDs[Int(b)]
            if id >= 0 {
                symbols.append(id)
                pendingUnknown = false
            } else if let unk = unknownID {
                if !(fusesUnknown && pendingUnknown) { symbols.append(unk) }
                pendingUnknown = true
            }
        }
        let n = symbols.count
        if n < 2 || merges.isEmpty { return symbols }
        if n == 2 {
            if let m = merges[Self.pairKey(symbols[0], symbols[1])] { return [Int32(truncatingIfNeeded: m)] }
            return symbols
        }

        // Doubly linked symbols and a min-heap of (rank << 32 | left position).
        var next = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = i + 1 < n ? Int32(i + 1) : -1 }
            count = n
        }
        var prev = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = Int32(i - 1) }
            count = n
        }
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        heap.reserve(n)
        for i in 0..<(n - 1) {
            if let m = merges[Self.pairKey(symbols[i], symbols[i + 1])] {
                heap.push((m >> 32) << 32 | UInt64(i))
            }
        }
        while let top = heap.pop() {
            let pos = Int(top & 0xFFFF_FFFF)
            let rank = top >> 32
            guard alive[pos] else { continue }
            let right = Int(next[pos])
            guard right >= 0,
                  let m = merges[Self.pairKey(symbols[pos], symbols[right])], m >> 32 == rank else { continue }
            symbols[pos] = Int32(truncatingIfNeeded: m)
            alive[right] = false
            let after = next[right]
            next[pos] = after
            if after >= 0 { prev[Int(after)] = Int32(pos) }
            let before = prev[pos]
            if before >= 0, let m2 = merges[Self.pairKey(symbols[Int(before)], symbols[pos])] {
                heap.push((m2 >> 32) << 32 | UInt64(before))
            }
            if after >= 0, let m3 = merges[Self.pairKey(symbols[pos], symbols[Int(after)])] {
                heap.push((m3 >> 32) << 32 | UInt64(pos))
            }
        }
        var out: [Int32] = []
        out.reserveCapacity(n)
        var i = 0
        while i >= 0 {
            out.append(symbols[i])
            i = Int(next[i])
        }
        return out
    }

    /// An open-addressing hash map from pair keys to merges (linear probing, a multiplicative
    /// hash). Faster than `Dictionary` for the BPE inner loop; keys never equal `UInt64.max`.
    struct PairTable: Sendable {
        private var keys: [UInt64]
        private var values: [UInt64]
        private let shift: UInt64
        private(set) var count = 0

        init(minimumCapacity n: Int) {
            var bits: UInt64 = 4
            while (1 << bits) < 2 * max(n, 1) { bits += 1 }
            keys = [UInt64](repeating: .max, count: 1 << bits)
            values = [UInt64](repeating: 0, count: 1 << bits)
            shift = 64 - bits
        }

        var isEmpty: Bool { count == 0 }

        @inline(__always)
        private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

        subscript(key: UInt64) -> UInt64? {
            let mask = keys.count - 1
            var i = slot(key)
            while true {
                let k = keys[i]
                if k == key { return values[i] }
                if k == .max { return nil }
                i = (i + 1) & mask
            }
        }

        /// Inserts or replaces. Precondition: fewer than `minimumCapacity` keys overall.
        mutating func set(_ value: UInt64, for key: UInt64) {
            let mask = keys.count - 1
            var i = slot(key)
            while keys[i] != .max && keys[i] != key { i = (i + 1) & mask }
            if keys[i] == .max { count += 1 }
            keys[i] = key
            values[i] = value
        }
    }

    /// A binary min-heap of UInt64.
    private struct MinHeap {
        private var items: [UInt64] = []

        mutating func reserve(_ n: Int) { items.reserveCapacity(n) }

        mutating func push(_ x: UInt64) {
            items.append(x)
            var i = items.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                if items[parent] <= x { break }
                items[i] = items[parent]
                i = parent
            }
            items[i] = x
        }

        mutating func pop() -> UInt64? {
            guard let last = items.popLast() else { return nil }
            if items.isEmpty { return last }
            let top = items[0]
            var i = 0
            let count = items.count
            while true {
                let l = 2 * i + 1
                if l >= count { break }
                let r = l + 1
                let child = r < count && items[r] < items[l] ? r : l
                if items[child] >= last { break }
                items[i] = items[child]
                i = child
            }
            items[i] = last
            return top
        }
    }

    /// A bounded, thread-safe map from piece bytes to ids. Once full it stops growing (as
    /// `tokenizers`' cache does).
    final class Cache: @unchecked Sendable {
        private let lock = NSLock()
        private var storage: [ByteString: [Int32]] = [:]
        let capacity: Int

        init(capacity: Int) { self.capacity = capacity }

        func value(for key: [UInt8]) -> [Int32]? {
            lock.lock()
            defer { lock.unlock() }
            return storage[ByteString(key)]
        }

        func insert(_ value: [Int32], for key: [UInt8]) {
            lock.lock()
            defer { lock.unlock() }
            if storage.count < capacity { storage[ByteString(key)] = value }
        }
    }
}

/// Bytes as a dictionary key, hashed in one block (an `[UInt8]` key hashes byte by byte).
struct ByteString: Hashable, Sendable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: ByteString, b: ByteString) -> Bool {
        a.bytes.count == b.bytes.count && a.bytes.withUnsafeBytes { x in
            b.bytes.withUnsafeBytes { y in x.elementsEqual(y) }
        }
    }
}
