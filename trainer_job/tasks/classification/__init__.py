"""Image classification (Multiclass, Multilabel): a linear head on a frozen backbone (Regular),
and fine-tuning of its last stages in the time left (Advanced)."""
