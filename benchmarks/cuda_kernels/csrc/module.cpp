// The Python module of the benchmark extension, written against the CPython
// API alone: including <torch/extension.h> costs ~50 s of compile whatever
// the arch list (measured on a 2-core machine), a fixed cost that would only dilute what
// the benchmark measures. It reports what the build holds; the launchers are
// plain C functions (they take raw device pointers).
#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern "C" {
const char* gpuenv_bench_arch_list(void);
int gpuenv_bench_elementwise_kernels(void);
int gpuenv_bench_reduce_kernels(void);
int gpuenv_bench_softmax_kernels(void);
int gpuenv_bench_layernorm_kernels(void);
int gpuenv_bench_gemm_kernels(void);
int gpuenv_bench_attention_kernels(void);
int gpuenv_bench_causal_conv1d_kernels(void);
int gpuenv_bench_scatter_kernels(void);
}

static PyObject* arch_list(PyObject*, PyObject*) { return PyUnicode_FromString(gpuenv_bench_arch_list()); }

static PyObject* kernel_counts(PyObject*, PyObject*) {
  return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
                       "elementwise", gpuenv_bench_elementwise_kernels(),
                       "reduce", gpuenv_bench_reduce_kernels(),
                       "softmax", gpuenv_bench_softmax_kernels(),
                       "layernorm", gpuenv_bench_layernorm_kernels(),
                       "gemm", gpuenv_bench_gemm_kernels(),
                       "attention", gpuenv_bench_attention_kernels(),
                       "causal_conv1d", gpuenv_bench_causal_conv1d_kernels(),
                       "scatter", gpuenv_bench_scatter_kernels());
}

static PyMethodDef methods[] = {
    {"arch_list", arch_list, METH_NOARGS, "nvcc's __CUDA_ARCH_LIST__ for this build, e.g. '750,900'"},
    {"kernel_counts", kernel_counts, METH_NOARGS, "kernels instantiated per source file"},
    {nullptr, nullptr, 0, nullptr},
};

static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "gpuenv's benchmark CUDA kernels", -1, methods};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module); }
