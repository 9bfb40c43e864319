import LoRTA
print("lorta \(LoRTAVersion.string)")
