using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace TcpLab.Stack.Wire;

/// <summary>A 48-bit Ethernet MAC address held in the low bits of a ulong, big-endian order.</summary>
public readonly record struct MacAddress(ulong Value)
{
    public const int Length = 6;
    public static readonly MacAddress Broadcast = new(0xFFFF_FFFF_FFFFUL);
    public static readonly MacAddress Zero = new(0);

    public static MacAddress Read(ReadOnlySpan<byte> bytes) =>
        new(((ulong)BinaryPrimitives.ReadUInt16BigEndian(bytes) << 32) | BinaryPrimitives.ReadUInt32BigEndian(bytes[2..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(Value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], (uint)Value);
    }

    public bool IsBroadcast => Value == Broadcast.Value;
    /// <summary>The I/G bit of the first octet: group (multicast or broadcast) address.</summary>
    public bool IsMulticast => (Value & 0x0100_0000_0000UL) != 0;
    /// <summary>The U/L bit of the first octet: locally administered, as the lab's MACs are.</summary>
    public bool IsLocallyAdministered => (Value & 0x0200_0000_0000UL) != 0;

    public static MacAddress Parse(string text) =>
        TryParse(text, out MacAddress mac) ? mac : throw new FormatException($"'{text}' is not a MAC address (aa:bb:cc:dd:ee:ff)");

    public static bool TryParse(string? text, out MacAddress mac)
    {
        mac = Zero;
        if (text is null) return false;
        string[] parts = text.Split(':', '-');
        if (parts.Length != 6) return false;
        ulong v = 0;
        foreach (string p in parts)
        {
            if (p.Length is < 1 or > 2 || !byte.TryParse(p, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b)) return false;
            v = (v << 8) | b;
        }
        mac = new MacAddress(v);
        return true;
    }

    public override string ToString()
    {
        Span<byte> b = stackalloc byte[6];
        Write(b);
        return $"{b[0]:x2}:{b[1]:x2}:{b[2]:x2}:{b[3]:x2}:{b[4]:x2}:{b[5]:x2}";
    }
}

/// <summary>An IPv4 address as a host-order uint (10.0.0.1 is 0x0A000001).</summary>
public readonly record struct Ipv4Address(uint Value) : IComparable<Ipv4Address>
{
    public const int Length = 4;
    public static readonly Ipv4Address Any = new(0);
    public static readonly Ipv4Address Broadcast = new(0xFFFF_FFFF);

    public static Ipv4Address Read(ReadOnlySpan<byte> bytes) => new(BinaryPrimitives.ReadUInt32BigEndian(bytes));
    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt32BigEndian(destination, Value);

    public bool IsAny => Value == 0;
    public bool IsBroadcast => Value == 0xFFFF_FFFF;
    public bool IsMulticast => (Value >> 28) == 0xE;
    public bool IsLoopback => (Value >> 24) == 127;

    public static Ipv4Address Parse(string text) =>
        TryParse(text, out Ipv4Address a) ? a : throw new FormatException($"'{text}' is not an IPv4 address");

    public static bool TryParse([NotNullWhen(true)] string? text, out Ipv4Address address)
    {
        address = Any;
        if (text is null) return false;
        string[] parts = text.Split('.');
        if (parts.Length != 4) return false;
        uint v = 0;
        foreach (string p in parts)
        {
            if (p.Length is < 1 or > 3 || !byte.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out byte b)) return false;
            v = (v << 8) | b;
        }
        address = new Ipv4Address(v);
        return true;
    }

    public int CompareTo(Ipv4Address other) => Value.CompareTo(other.Value);

    public override string ToString() => $"{Value >> 24}.{(Value >> 16) & 0xFF}.{(Value >> 8) & 0xFF}.{Value & 0xFF}";
}

/// <summary>An address with its prefix length, as in "10.77.0.2/24".</summary>
public readonly record struct Ipv4Cidr(Ipv4Address Address, int PrefixLength)
{
    public uint Mask => PrefixLength == 0 ? 0 : uint.MaxValue << (32 - PrefixLength);
    public Ipv4Address Network => new(Address.Value & Mask);
    public Ipv4Address DirectedBroadcast => new(Address.Value | ~Mask);

    public bool Contains(Ipv4Address a) => (a.Value & Mask) == (Address.Value & Mask);

    public static Ipv4Cidr Parse(string text) =>
        TryParse(text, out Ipv4Cidr c) ? c : throw new FormatException($"'{text}' is not an IPv4 address with prefix (10.77.0.2/24)");

    public static bool TryParse(string? text, out Ipv4Cidr cidr)
    {
        cidr = default;
        if (text is null) return false;
        int slash = text.IndexOf('/');
        if (slash < 0 || !Ipv4Address.TryParse(text[..slash], out Ipv4Address a)) return false;
        if (!int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p > 32) return false;
        cidr = new Ipv4Cidr(a, p);
        return true;
    }

    public override string ToString() => $"{Address}/{PrefixLength}";
}
