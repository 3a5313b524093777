import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deq_explorer.metrics import batch_ssim, consistency, psnr, ssim


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
