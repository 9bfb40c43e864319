#!/usr/bin/env bash
# Checks that a consumer package can depend on swift-lorta *by version* (the C target uses
# unsafe flags, allowed for dependencies whose manifest is at tools-version 6.2+): clones the
# committed HEAD to a temporary folder, tags it, builds a throwaway package that depends on it
# with `.package(url: "file://...", from: TAG)` and runs a program that calls a kernel.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/lorta-embed.XXXXXX)"
trap 'rm -rf "$work"' EXIT
tag="9.9.9"
git clone -q "$root" "$work/swift-lorta"
git -C "$work/swift-lorta" -c user.name=check -c user.email=check@localhost tag "$tag"
mkdir -p "$work/consumer/Sources/consumer"
cat > "$work/consumer/Package.swift" <<PKG
// swift-tools-version: 6.0
import PackageDescription
let package = Package(
    name: "consumer",
    dependencies: [.package(url: "file://$work/swift-lorta", from: "$tag")],
    targets: [.executableTarget(name: "consumer", dependencies: [.product(name: "LoRTA", package: "swift-lorta")])]
)
PKG
cp "$root/scripts/embedding-consumer.swift" "$work/consumer/Sources/consumer/main.swift"
cd "$work/consumer"
swift build 2>&1 | tail -3
out="$(LORTA_NUM_THREADS=2 "$(swift build --show-bin-path)/consumer")"
echo "$out"
case "$out" in
  *"consumer ok"*) echo "check-embedding: OK (dependency by version '$tag' builds and runs)" ;;
  *) echo "check-embedding: FAILED" >&2; exit 1 ;;
esac
