// The program built by scripts/check-embedding.sh in a throwaway consumer package.
import LoRTA

try Runtime.initialize()
print("threads=\(Runtime.threadCount) isa=\(Runtime.instructionSet)")
print("consumer ok")
