"""Sans-I/O wire layer: envelope structs, codecs and the auth packet. Nothing here awaits."""
