#ifndef CFUZZERDRIVER_H
#define CFUZZERDRIVER_H
#include <stddef.h>
#include <stdint.h>
// libFuzzer's documented entry for programs that own main() (LLVM >= 11).
// SwiftPM renames an executable's main to <Module>_main, so the fuzz targets
// start libFuzzer themselves rather than link its main().
int LLVMFuzzerRunDriver(int *argc, char ***argv,
                        int (*callback)(const uint8_t *data, size_t size));
#endif
