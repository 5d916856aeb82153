// Python binding of gpuenv's test extension: the only file that includes torch.
#include <torch/extension.h>

extern "C" const char* gpuenv_test_add_scalar(float* data, long long n, float value);
extern "C" const char* gpuenv_test_scale(float* data, long long n, float factor);
extern "C" const char* gpuenv_test_arch_list();

static void check_input(const torch::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), "expected a CUDA tensor");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected a float32 tensor");
  TORCH_CHECK(x.is_contiguous(), "expected a contiguous tensor");
}

// Adds value to x in place and returns x.
torch::Tensor add_scalar_(torch::Tensor x, double value) {
  check_input(x);
  const char* error = gpuenv_test_add_scalar(x.data_ptr<float>(), x.numel(), static_cast<float>(value));
  TORCH_CHECK(error == nullptr, "add_scalar_ kernel launch failed: ", error);
  return x;
}

// Multiplies x by factor in place and returns x.
torch::Tensor scale_(torch::Tensor x, double factor) {
  check_input(x);
  const char* error = gpuenv_test_scale(x.data_ptr<float>(), x.numel(), static_cast<float>(factor));
  TORCH_CHECK(error == nullptr, "scale_ kernel launch failed: ", error);
  return x;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("add_scalar_", &add_scalar_, "x += value, in place (CUDA float32)");
  m.def("scale_", &scale_, "x *= factor, in place (CUDA float32)");
  m.def("arch_list", []() { return std::string(gpuenv_test_arch_list()); },
        "nvcc's __CUDA_ARCH_LIST__ for this build, e.g. '800,900'");
}
