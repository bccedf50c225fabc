using BenchmarkDotNet.Running;

namespace TcpLab.Benchmarks;

/// <summary>`dotnet run -c Release --project tools/TcpLab.Benchmarks -- --filter '*'` (or `make bench`).</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
