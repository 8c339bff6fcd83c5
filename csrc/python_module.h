// The Python side of the op schemas: every TORCH_LIBRARY_FRAGMENT(vadx, m) calls
// m.set_python_module(kFakeKernelModule, kFakeKernelContext) before its defs (as torchvision's
// fragments name torchvision._meta_registrations). All fake (meta) kernels are registered by that
// one module (vadx/ops/_fake.py), so running an op on fake or meta tensors with the library loaded
// but the module not imported fails with torch's "you may need to import the 'vadx.ops._fake'
// Python module" error instead of a bare missing-kernel error; and torch.library.register_fake
// checks that the fake kernels really come from the module named here.
#pragma once

namespace vadx {

constexpr const char* kFakeKernelModule = "vadx.ops._fake";
constexpr const char* kFakeKernelContext = "`import vadx` imports it";

}  // namespace vadx
