import CFuzzerDriver

/// A target that crashes on purpose on inputs starting with `CRASH`: the
/// runner's own test (`./fuzz/run --self-test`) proves that a finding makes
/// `./fuzz/run` exit non-zero and name the artifact.
@_cdecl("FuzzRunnerSelfTest_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data, size >= 5 else { return 0 }
        let bytes = UnsafeBufferPointer(start: data, count: size)
        if Array(bytes.prefix(5)) == Array("CRASH".utf8) { fatalError("the runner self-test crashes on purpose") }
        return 0
    }
}
