"""The Fashion-MNIST class names in label order, shared by the served classifier and generator and by their
builds (no numpy here: the catalog's specs import it)."""

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
