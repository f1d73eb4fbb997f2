"""Shared by the vector IO providers: the provider base class and Qdrant's client code."""
