"""ESRGAN's losses: RaGAN as the paper writes it, VGG19 features taken before the ReLU, torchvision keys."""

from __future__ import annotations

import math

import pytest
import torch

from vidsr.errors import ModelError
from vidsr.train.losses import PerceptualLoss, ragan_discriminator_loss, ragan_generator_loss
from vidsr.train.vgg import VGG19_CONV_INDEX, VGG19Features, load_vgg19

REAL = torch.tensor([1.5, -0.5, 2.0, 0.25])
FAKE = torch.tensor([0.3, -1.2, 0.9])


def paper_d_ra(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """D_Ra(x_a, x_b) = σ(C(x_a) − E[C(x_b)]), written out with sigmoid and mean."""
    return 1 / (1 + torch.exp(-(a - b.mean())))


def test_discriminator_loss_is_the_papers_formula():
    expected = -torch.log(paper_d_ra(REAL, FAKE)).mean() - torch.log(1 - paper_d_ra(FAKE, REAL)).mean()
    assert ragan_discriminator_loss(REAL, FAKE).item() == pytest.approx(expected.item(), rel=1e-6)


def test_generator_loss_is_the_papers_formula():
    expected = -torch.log(1 - paper_d_ra(REAL, FAKE)).mean() - torch.log(paper_d_ra(FAKE, REAL)).mean()
    assert ragan_generator_loss(REAL, FAKE).item() == pytest.approx(expected.item(), rel=1e-6)


def test_undecided_discriminator_costs_two_log_two_on_both_sides():
    zeros = torch.zeros(5)
    assert ragan_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert ragan_generator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))


def test_losses_pull_in_opposite_directions():
    confident = (torch.tensor([4.0, 5.0]), torch.tensor([-4.0, -5.0]))  # real judged far more real than fake
    assert ragan_discriminator_loss(*confident) < 0.01
    assert ragan_generator_loss(*confident) > 10


def test_generator_gradient_reaches_the_fake_logits_through_both_terms():
    fake = FAKE.clone().requires_grad_(True)
    ragan_generator_loss(REAL, fake).backward()
    # d/df_j of the fake term: −(1 − σ(f_j − E[r]))/n; of the real term (through E[f]): −E[σ(r − E[f])]/n.
    fake_term = -(1 - torch.sigmoid(FAKE - REAL.mean())) / len(FAKE)
    real_term = -torch.sigmoid(REAL - FAKE.mean()).mean() / len(FAKE)
    assert torch.allclose(fake.grad, fake_term + real_term, atol=1e-6)


def _torchvision_style_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under torchvision's VGG19 names, with a classifier key that must be ignored."""
    generator = torch.Generator().manual_seed(seed)
    state, in_channels = {}, 3
    for name, index in VGG19_CONV_INDEX.items():
        width = 64 * 2 ** min(int(name[4]) - 1, 3)
        state[f"features.{index}.weight"] = (
            torch.randn(width, in_channels, 3, 3, generator=generator) * (2 / (9 * in_channels)) ** 0.5
        )
        state[f"features.{index}.bias"] = torch.randn(width, generator=generator) * 0.1
        in_channels = width
    state["classifier.0.weight"] = torch.zeros(2, 2)
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg19-test.pth"
    torch.save(_torchvision_style_state(), path)
    return path


def test_torchvision_format_weights_load_by_their_names(vgg_file):
    network = load_vgg19(vgg_file, layers=("conv5_4",))
    state = _torchvision_style_state()
    assert torch.equal(network.features[34].weight, state["features.34.weight"])
    assert torch.equal(network.features[0].bias, state["features.0.bias"])
    assert not any(parameter.requires_grad for parameter in network.parameters())


def test_conv5_4_is_taken_before_its_relu(vgg_file):
    network = load_vgg19(vgg_file, layers=("conv5_4",))
    # conv5_4 is features.34; its ReLU (35) is not even built, and nothing after it.
    assert VGG19_CONV_INDEX["conv5_4"] == 34
    assert len(network.features) == 35 and isinstance(network.features[34], torch.nn.Conv2d)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    features = network(images)["conv5_4"]
    # Reference: everything up to conv5_4's input, then the conv itself, by hand.
    normalised = (images - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        before = network.features[:34](normalised)
        expected = torch.nn.functional.conv2d(before, network.features[34].weight, network.features[34].bias, padding=1)
    assert torch.allclose(features, expected, atol=1e-5)
    assert (features < 0).any(), "pre-activation features keep their negative responses"


def test_shallow_layers_are_pre_activation_too(vgg_file):
    network = load_vgg19(vgg_file, layers=("conv1_2", "conv2_2"))
    features = network(torch.rand(1, 3, 16, 16))
    assert set(features) == {"conv1_2", "conv2_2"}
    assert all((value < 0).any() for value in features.values())


def test_a_file_that_is_not_vgg19_is_refused_with_the_key(tmp_path):
    state = _torchvision_style_state()
    del state["features.34.weight"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"features\.34\.weight is missing"):
        load_vgg19(path)


def test_perceptual_loss_is_zero_for_equal_images_and_trains_the_output(vgg_file):
    loss = PerceptualLoss(load_vgg19(vgg_file, layers=("conv5_4",)), layer_weights={"conv5_4": 1.0})
    target = torch.rand(1, 3, 32, 32)
    assert loss(target, target).item() == 0.0
    output = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(output, target)
    value.backward()
    assert value.item() > 0 and output.grad.abs().sum() > 0


def test_unknown_layer_names_are_refused():
    with pytest.raises(ModelError, match="conv6_1"):
        VGG19Features(layers=("conv6_1",))
