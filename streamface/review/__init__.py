"""Review: clusters in FiftyOne, the decisions and the annotations they give."""
