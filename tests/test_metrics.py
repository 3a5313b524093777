import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deq_explorer.metrics import batch_consistency, batch_ssim, consistency, psnr, ssim


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread avoids contention on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(shape, generator=g)
    return (ref + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1), ref


def _sk_ssim(x, ref):
    return np.mean(
        [
            structural_similarity(
                x[b].numpy(),
                ref[b].numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
                channel_axis=0,
            )
            for b in range(x.shape[0])
        ]
    )


@pytest.mark.parametrize("shape", [(2, 3, 37, 31), (1, 1, 11, 12), (3, 1, 64, 64)])
def test_ssim_agrees_with_skimage(shape):
    x, ref = _pair(shape)
    assert abs(ssim(x, ref) - _sk_ssim(x, ref)) < 1e-3
    assert abs(ssim(ref, ref) - 1.0) < 1e-9


def test_ssim_smooth_images_and_unbatched_input():
    from skimage import data

    ref = torch.from_numpy(data.camera()[100:164, 200:264] / 255.0).float()
    x = ref + 0.05 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    expected = structural_similarity(
        x.numpy(),
        ref.numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert abs(ssim(x, ref) - expected) < 1e-3
    assert batch_ssim(x, ref).shape == (1,)


def test_psnr_agrees_with_skimage():
    x, ref = _pair((2, 3, 20, 21), seed=2)
    expected = np.mean(
        [peak_signal_noise_ratio(ref[b].numpy(), x[b].numpy(), data_range=1.0) for b in range(2)]
    )
    assert abs(psnr(x, ref) - expected) < 1e-4


def test_metric_errors():
    x, ref = _pair((1, 1, 8, 8))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(x, ref)
    with pytest.raises(ValueError, match="differs"):
        psnr(x, ref[..., :4])


class _Scale:
    def A(self, x):
        return 2 * x

    def norm(self, y):
        return torch.linalg.vector_norm(y.flatten(1), dim=1)


def test_consistency_is_relative_residual_batch_mean():
    x, ref = _pair((2, 1, 5, 5), seed=3)
    y = 2 * ref
    per_item = [float((2 * x[b] - y[b]).norm() / y[b].norm()) for b in range(2)]
    assert abs(consistency(_Scale(), x, y) - np.mean(per_item)) < 1e-6
    assert consistency(_Scale(), ref, y) == 0.0


def test_ssim_float32_is_free_of_variance_cancellation():
    """Bright, nearly flat images: float32 agrees with float64 to 1.5e-6 (4e-7 measured;
    without the data_range/2 shift of the statistics the error is 3e-6)."""
    g = torch.Generator().manual_seed(0)
    ref = 0.97 + 0.02 * torch.rand(1, 1, 48, 48, generator=g, dtype=torch.float64)
    x = ref + 1e-3 * torch.randn(ref.shape, generator=g, dtype=torch.float64)
    assert abs(ssim(x.float(), ref.float()) - ssim(x, ref)) < 1.5e-6
    assert abs(ssim(x, ref) - _sk_ssim(x, ref)) < 1e-6


def test_ssim_and_psnr_with_a_data_range():
    x, ref = _pair((1, 1, 30, 40), seed=4)
    x, ref = 255 * x, 255 * ref
    expected = structural_similarity(
        x[0, 0].numpy(),
        ref[0, 0].numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255.0,
    )
    assert abs(ssim(x, ref, data_range=255.0) - expected) < 1e-3
    sk_psnr = peak_signal_noise_ratio(ref[0].numpy(), x[0].numpy(), data_range=255.0)
    assert abs(psnr(x, ref, data_range=255.0) - sk_psnr) < 1e-4


def test_consistency_with_a_precomputed_norm():
    x, ref = _pair((2, 1, 5, 5), seed=5)
    y = 2 * ref
    op = _Scale()
    assert torch.equal(batch_consistency(op, x, y, op.norm(y)), batch_consistency(op, x, y))


def test_error_map_is_the_absolute_difference():
    import torch

    from deq_explorer.metrics import error_map

    x = torch.tensor([[[[0.2, 0.9]]]])
    ref = torch.tensor([[[[0.5, 0.4]]]])
    assert torch.allclose(error_map(x, ref), torch.tensor([[[[0.3, 0.5]]]]))
