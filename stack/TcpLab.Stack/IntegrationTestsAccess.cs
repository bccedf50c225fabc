using System.Runtime.CompilerServices;

// Belongs with the InternalsVisibleTo items in TcpLab.Stack.csproj; kept in its own file so
// that adding the integration tests did not touch the shared project file.
[assembly: InternalsVisibleTo("TcpLab.Integration.Tests")]
