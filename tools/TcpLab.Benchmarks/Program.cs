using BenchmarkDotNet.Running;

// `make bench` passes its arguments (e.g. --filter '*') straight to BenchmarkDotNet.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
