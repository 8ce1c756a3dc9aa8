"""PyTorch models (plain ``nn.Module`` classes): GBA-RSU, GBA-Vehicle, RSU ablations, differentiable rates."""
