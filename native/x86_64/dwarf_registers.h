// x86_64 register numbers in DWARF call frame information (System V psABI, "DWARF Register Number
// Mapping"). Plain constants, usable on any host: images of x86_64 kernels are parsed everywhere.
#pragma once

namespace timeskew::x86_64 {

constexpr int kDwarfFramePointer = 6;     // rbp
constexpr int kDwarfStackPointer = 7;     // rsp
constexpr int kDwarfReturnAddress = 16;   // the return address column (rip in the caller)

}  // namespace timeskew::x86_64
