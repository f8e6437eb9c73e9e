"""Publishing a corpus: the dataset card, the Hub release and folder exports for detector code."""
