using BenchmarkDotNet.Running;

namespace TcpLab.Benchmarks;

/// <summary>
/// `dotnet run -c Release --project tools/TcpLab.Benchmarks -- --filter '*'` (or `make bench`) runs
/// the BenchmarkDotNet suite; `-- bulk-sim` and `-- bulk-tap` run the end-to-end transfers.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "bulk-sim":
                SimulatedBulk.Run(args[1..]);
                break;
            case "bulk-tap":
                TapBulk.Run(args[1..]);
                break;
            default:
                BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
                break;
        }
    }
}
