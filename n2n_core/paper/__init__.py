"""What the paper defines: the noise models, the two networks, the losses, the metric, and its reported figures."""
