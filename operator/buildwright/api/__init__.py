"""API models of the four shipwright.io kinds: v1beta1 canonical, v1alpha1 converted."""
